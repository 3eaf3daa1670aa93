"""GRPO in two processes on the CPU, launched as a user launches it: `llmfactory train grpo.yaml` with FORCE_TORCHRUN=1.

torchrun starts two workers (gloo backend); each samples its share of every prompt group, the rewards are gathered so
that the advantages are normalised over the whole group, and rank 0 writes the log and the model. Tiny model, a few
steps: it takes well under a minute on a quiet machine (the subprocess is given 5 minutes at most).
"""
import json, os, socket, subprocess, sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_grpo_two_processes(tmp_path):
    out = tmp_path / "out"
    cfg = dict(model_name_or_path="tiny-qwen2", stage="grpo", finetuning_type="lora", dataset="math_train", dataset_dir=str(ROOT / "data"),
               template="default", max_samples=64, cutoff_len=64, reward_funcs="number_match,digit_format", grpo_num_generations=4,
               per_device_train_batch_size=2, num_iterations=2, max_steps=4, logging_steps=1, learning_rate=5e-3, pref_beta=0.04,
               max_new_tokens=4, temperature=1.0, save_strategy="no", report_to="none", disable_tqdm=True, output_dir=str(out))
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run([sys.executable, "-m", "llmfactory.cli", "train", str(path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-4000:]
    assert "launching:" in text and "--nproc_per_node=2" in text, text[-2000:]
    assert text.count("trainable parameters:") == 2, text[-2000:]  # one line per worker
    log = [json.loads(l) for l in (out / "trainer_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "reward" in r or "clip_ratio/region_mean" in r]
    assert [r["current_steps"] for r in steps] == [1, 2, 3, 4], log
    # one data-parallel run, not two copies: an epoch is 64 prompts x 4 replies x 2 updates / (2 replies x 2 workers) = 128 steps
    assert abs(steps[-1]["epoch"] - 4 / 128) < 1e-6, steps[-1]
    # each step samples 1 prompt x 4 replies, 2 on each worker: the group's rewards are gathered before its advantages are computed
    gen = [r for r in steps if "num_tokens" in r]
    assert gen and all(r["completions/mean_length"] > 0 for r in gen)
    assert all(r["loss"] == r["loss"] for r in steps)  # finite
    assert any(r["clip_ratio/region_mean"] > 0 for r in steps)  # num_iterations 2: the second update of each batch is clipped
    assert (out / "adapter_model.safetensors").exists()
