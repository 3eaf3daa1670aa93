# LLaMA Pro: add 1 identity block after each layer half of the tiny Llama (2 layers -> 4), then train only the new blocks.
llmfactory expand model_name_or_path=tiny-llama output_dir=saves/tiny-llama-pro num_expand=2
llmfactory train examples/extras/llama_pro/tiny_llama_pro_sft.yaml
