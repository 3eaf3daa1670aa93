"""A tiny vision-language model learns what only the image tells: the colour and the shape of a drawn figure.

    python bench/vlm_learning.py [--quick] [--check]

Rows as LLaMA-Factory's `mllm_demo` has them (sharegpt, `<image>` in the user turn, an `images` column of paths),
drawn by `llmfactory.demo.shape_rows`: "What colour is the shape?" (red, green, blue, yellow) or "Is it a square
or a circle?". The text is the same for every image, so without seeing the image a model can do no better than
chance (50% over the mix of questions: 1/4 for colour, 1/2 for shape).

The tiny Qwen2-VL (`tiny-qwen2-vl`, random weights) is fine-tuned through `llmfactory.train` with template
`qwen2_vl`: the language model (full tuning, it is tiny) and the projector train, the vision tower stays frozen
(LLaMA-Factory's default for it). Held-out accuracy: for each held-out image the colour the model finds most likely
(scored by the summed log-probability of the reply tokens, through the library's own template, media plugin
and collator). Printed: accuracy before and after, and the target (`--check` exits 1 below it):
at least 0.90 held out (`--quick`, the CI version, fewer rows and epochs: at least 0.75).
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLOURS = ["red", "green", "blue", "yellow"]


def write_rows(path: Path, name: str, n: int, seed: int) -> list[dict]:
    from llmfactory.demo import MLLM_ENTRY, shape_rows, write_dataset
    rows, images = shape_rows(n, seed=seed, image_dir=f"{name}_images")
    for rel, img in images.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True); img.save(path / rel)
    write_dataset(path, name, rows, **MLLM_ENTRY)
    return rows


def accuracy(model_dir: str, adapter: str | None, rows: list[dict], data_dir: Path) -> dict:
    "Held-out colour accuracy of the model (with `adapter`), picking the likeliest of the four colours"
    import torch
    from llmfactory.collators import get_collator
    from llmfactory.hparams import FinetuningArguments, ModelArguments
    from llmfactory.mm_plugin import get_mm_plugin, load_media_processor
    from llmfactory.model import load_model, load_tokenizer
    from llmfactory.processors import IGNORE_INDEX
    from llmfactory.template_auto import get_template
    from llmfactory.tiny import resolve_model_path
    m = ModelArguments(model_name_or_path=model_dir, adapter_name_or_path=adapter)
    tok = load_tokenizer(m)
    model = load_model(tok, m, FinetuningArguments(finetuning_type="lora" if adapter else "full")).eval()
    tpl, plugin = get_template("qwen2_vl"), get_mm_plugin("qwen2_vl")
    proc = load_media_processor(resolve_model_path(model_dir))
    collate = get_collator(tok, plugin=plugin, processor=proc)
    right, total = {}, {}
    for r in rows:
        q, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        kind = "colour"
        images = [str(data_dir / p) for p in r["images"]]
        feats = []
        for cand in COLOURS:
            msgs = plugin.expand([{"role": "user", "content": q}, {"role": "assistant", "content": cand}], plugin.images(images, proc), proc)
            (p, a), = tpl.encode_multiturn(tok, msgs)
            feats.append({"input_ids": p + a, "attention_mask": [1] * (len(p) + len(a)), "labels": [IGNORE_INDEX] * len(p) + a, "images": images})
        batch = collate(feats)
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        lab = batch["labels"][:, 1:]
        lp = torch.gather(logits[:, :-1].log_softmax(-1), 2, lab.clamp(min=0)[..., None])[..., 0] * (lab != IGNORE_INDEX)
        best = COLOURS[int(lp.sum(-1).argmax())]
        right[kind] = right.get(kind, 0) + (best == answer); total[kind] = total.get(kind, 0) + 1
    return {"colour": right["colour"] / total["colour"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI version: fewer rows and epochs, a lower target")
    p.add_argument("--check", action="store_true", help="exit 1 if the held-out accuracy misses its target")
    a = p.parse_args(argv)
    import llmfactory
    n_train, epochs, target = (160, 4, 0.75) if a.quick else (400, 6, 0.90)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_rows(data, "shapes_train", n_train, seed=1)
        test = write_rows(data, "shapes_test", 80, seed=2)
        t0 = time.time()
        before = accuracy("tiny-qwen2-vl", None, test, data)
        out = Path(tmp) / "out"
        metrics = llmfactory.train(dict(model_name_or_path="tiny-qwen2-vl", stage="sft", dataset="shapes_train", dataset_dir=str(data),
                                        template="qwen2_vl", finetuning_type="full", freeze_multi_modal_projector=False, output_dir=str(out), per_device_train_batch_size=8,
                                        learning_rate=3e-3, num_train_epochs=epochs, lr_scheduler_type="constant", logging_steps=10,
                                        save_strategy="no", report_to="none", cutoff_len=128, seed=0, disable_tqdm=True))
        after = accuracy(str(out), None, test, data)  # the fine-tuned model folder: weights, tokenizer, image processor
    fmt = lambda d: f"{d['colour']:.2f}"
    print(f"vlm held-out accuracy before: {fmt(before)}")
    print(f"vlm held-out accuracy after:  {fmt(after)}  ({n_train} rows x {epochs} epochs, loss {metrics['first_loss']:.2f} -> {metrics['last_loss']:.2f}, {time.time() - t0:.0f} s)")
    ok = after["colour"] >= target
    print(f"vlm target: held-out accuracy >= {target:.2f} (chance 0.25): {'met' if ok else 'MISSED'}")
    return 0 if ok or not a.check else 1


if __name__ == "__main__":
    sys.exit(main())
