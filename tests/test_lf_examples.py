"""LLaMA-Factory's own example configs and demo data, run unchanged but for the model (a tiny one) and a few size keys.

The demo data lives in ../shared/data beside the checkout (LLaMA-Factory's registry as `llamafactory_dataset_info.json`);
these tests read it in place and are skipped, visibly, where it is absent.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "llamafactory_dataset_info.json").exists(),
                                  reason="../shared/data (LLaMA-Factory's demo sets) is not beside the checkout")

# examples/train_lora/qwen3_lora_reward.yaml of LLaMA-Factory, as it ships
QWEN3_LORA_REWARD = """\
### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true

### method
stage: rm
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: dpo_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen3-4b/lora/reward
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""


def lf_dataset_dir(tmp_path: Path) -> Path:
    "A dataset_dir holding LLaMA-Factory's registry under its usual name, its files linked in place"
    d = tmp_path / "data"
    d.mkdir()
    (d / "dataset_info.json").write_text((SHARED / "llamafactory_dataset_info.json").read_text(encoding="utf-8"), encoding="utf-8")
    for f in SHARED.iterdir():
        if f.name != "llamafactory_dataset_info.json": (d / f.name).symlink_to(f)
    return d


@needs_shared
def test_lf_reward_example_on_a_tokenizer_without_qwen3_tokens(tmp_path):
    "The qwen3_nothink template adds tokens tiny-llama's tokenizer lacks: the rm stage resizes the vocabulary and trains"
    cfg = tmp_path / "qwen3_lora_reward.yaml"
    cfg.write_text(QWEN3_LORA_REWARD)
    out = tmp_path / "reward"
    overrides = ["model_name_or_path=tiny-llama", "trust_remote_code=false", f"dataset_dir={lf_dataset_dir(tmp_path)}",
                 f"output_dir={out}", "max_samples=16", "cutoff_len=256", "max_steps=2", "logging_steps=1",
                 "gradient_accumulation_steps=2", "dataloader_num_workers=0", "preprocessing_num_workers=1", "disable_tqdm=true"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "llmfactory.cli", "train", str(cfg), *overrides], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_loss"] == results["train_loss"] and results["train_loss"] > 0  # finite
    logs = [json.loads(l) for l in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in logs if "loss" in r] == [1, 2]
    assert (out / "adapter_model.safetensors").exists()


@needs_shared
@pytest.mark.parametrize("name", ["identity", "alpaca_en_demo", "dpo_en_demo", "kto_en_demo", "glaive_toolcall_en_demo", "c4_demo", "wiki_demo"])
def test_lf_registry_entries_parse(name, tmp_path):
    "Each of LLaMA-Factory's demo registry entries is accepted by the stage it is for, before anything loads"
    from llmfactory.data import check_stage_data, get_dataset_attrs
    stage = {"dpo_en_demo": "dpo", "kto_en_demo": "kto", "c4_demo": "pt", "wiki_demo": "pt"}.get(name, "sft")
    attrs = get_dataset_attrs([name], str(lf_dataset_dir(tmp_path)))
    check_stage_data(attrs, stage)
    assert len(attrs) == 1


# examples/train_lora/qwen2_5vl_lora_sft.yaml of LLaMA-Factory, as it ships
QWEN2_5VL_LORA_SFT = """\
### model
model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct
image_max_pixels: 262144
video_max_pixels: 16384
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: mllm_demo,identity,alpaca_en_demo  # video: mllm_video_demo
template: qwen2_vl
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen2_5vl-7b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
# val_size: 0.1
# per_device_eval_batch_size: 1
# eval_strategy: steps
# eval_steps: 500
"""


def lf_mllm_dataset_dir(tmp_path: Path) -> Path:
    "`lf_dataset_dir` with an mllm_demo.json and its images: LLaMA-Factory's is not in ../shared, so the project's own, in its layout"
    from llmfactory.demo import demo_images
    data = lf_dataset_dir(tmp_path)
    rows, images = demo_images()
    (data / "mllm_demo.json").write_text(json.dumps(rows["mllm_demo.json"]))
    for rel, img in images.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True); img.save(data / rel)
    return data


@needs_shared
def test_lf_vlm_example_on_the_tiny_qwen2_vl(tmp_path):
    "LLaMA-Factory's Qwen2.5-VL LoRA example with its registry (mllm_demo beside identity and alpaca_en_demo) trains the tiny Qwen2-VL"
    data = lf_mllm_dataset_dir(tmp_path)
    cfg = tmp_path / "qwen2_5vl_lora_sft.yaml"
    cfg.write_text(QWEN2_5VL_LORA_SFT)
    out = tmp_path / "sft"
    overrides = ["model_name_or_path=tiny-qwen2-vl", f"dataset_dir={data}", f"output_dir={out}", "max_samples=8", "max_steps=2",
                 "logging_steps=1", "gradient_accumulation_steps=2", "dataloader_num_workers=0", "preprocessing_num_workers=1", "disable_tqdm=true"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "llmfactory.cli", "train", str(cfg), *overrides], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "multimodal: LoRA on the language model; projector frozen; vision tower frozen" in res.stdout
    logs = [json.loads(l) for l in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in logs if "loss" in r] == [1, 2]
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in logs if "loss" in r)
    assert (out / "adapter_model.safetensors").exists()


# examples/train_lora/llava1_5_lora_sft.yaml of LLaMA-Factory, as it ships
LLAVA1_5_LORA_SFT = """\
### model
model_name_or_path: llava-hf/llava-1.5-7b-hf
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_target: all

### dataset
dataset: mllm_demo
template: llava
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16

### output
output_dir: saves/llava1_5-7b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000

### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""


@needs_shared
def test_lf_llava_example_on_the_tiny_llava(tmp_path):
    "LLaMA-Factory's LLaVA-1.5 LoRA example (mllm_demo, template llava, a held-out split) trains the tiny LLaVA-1.5"
    data = lf_mllm_dataset_dir(tmp_path)
    cfg = tmp_path / "llava1_5_lora_sft.yaml"
    cfg.write_text(LLAVA1_5_LORA_SFT)
    out = tmp_path / "sft"
    overrides = ["model_name_or_path=tiny-llava", f"dataset_dir={data}", f"output_dir={out}", "max_samples=20", "max_steps=2", "eval_steps=2",
                 "logging_steps=1", "gradient_accumulation_steps=2", "preprocessing_num_workers=1", "disable_tqdm=true"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "llmfactory.cli", "train", str(cfg), *overrides], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "multimodal: LoRA on the language model; projector frozen; vision tower frozen" in res.stdout
    logs = [json.loads(l) for l in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in logs if "loss" in r] == [1, 2]
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in logs if "loss" in r)
    assert any("eval_loss" in r and r["eval_loss"] == r["eval_loss"] for r in logs)  # the held-out rows, with their images
    assert (out / "adapter_model.safetensors").exists()
