"""GPU checks that CPU CI cannot run: LoRA, QLoRA 4/8-bit and DPO training in bf16 on CUDA, full-tuning DPO, KTO, PPO and
GRPO (their reference, reward and policy models must share the GPU), attention implementations, chat generation with an adapter
and a merged export, on the tiny Llama.

    python bench/gpu_check.py [--out DIR] [--only NAME,...] [--cpu]

Prints one line per check (`PASS`/`FAIL`/`SKIP name: detail`) and a summary; writes `gpu_check.json` to DIR.
Runs in a few minutes on one GPU, offline (the tiny model is built locally).
"""
import argparse, json, math, os, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = str(ROOT / "data")
DEFAULTS = {"bf16": True}


def train(**kw):
    import llmfactory
    out = tempfile.mkdtemp()
    cfg = dict(model_name_or_path="tiny-llama", dataset="alpaca_demo", dataset_dir=DATA, template="default", cutoff_len=128,
               finetuning_type="lora", lora_target="all", output_dir=out, per_device_train_batch_size=8, learning_rate=5e-3,
               max_steps=60, logging_steps=5, save_strategy="no", report_to="none", disable_tqdm=True)
    cfg.update(DEFAULTS, **kw)
    t0 = time.time()
    metrics = llmfactory.train(cfg)
    return out, metrics, time.time() - t0


def check_learns(name, **kw):
    out, m, secs = train(**kw)
    ok = m["last_loss"] < 0.85 * m["first_loss"]
    return ok, f"loss {m['first_loss']:.3f} -> {m['last_loss']:.3f} in {secs:.1f}s", out


def check_rewards(name, **kw):
    "An RL stage (ppo, grpo) runs its steps with finite losses and rewards: its reference and reward models sit beside the policy"
    from llmfactory.callbacks import read_log
    out, m, secs = train(**kw)
    recs = read_log(out)
    rewards, losses = [r["reward"] for r in recs if "reward" in r], [r["loss"] for r in recs if "loss" in r]
    ok = len(rewards) >= 2 and all(math.isfinite(v) for v in rewards + losses)
    return ok, f"reward {rewards[0]:.3f} -> {rewards[-1]:.3f}, loss {losses[0]:.3f} -> {losses[-1]:.3f} in {secs:.1f}s", out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    p.add_argument("--cpu", action="store_true", help="dry run of the script on a CPU (fp32)")
    p.add_argument("--only", default="", help="comma-separated parts of check names: run only the checks whose name holds one")
    a = p.parse_args()
    only = [o.strip() for o in a.only.split(",") if o.strip()]
    if a.cpu: DEFAULTS["bf16"] = False
    import torch
    results = []

    def record(name, fn):
        if only and not any(o in name for o in only): return
        try:
            ok, detail, *_ = fn()
            status = "PASS" if ok is True else ("SKIP" if ok is None else "FAIL")
        except Exception as e:
            status, detail = "FAIL", f"{type(e).__name__}: {e}".splitlines()[0][:300]
            traceback.print_exc()
        results.append(dict(check=name, status=status, detail=detail))
        print(f"{status} {name}: {detail}", flush=True)

    if not torch.cuda.is_available() and not a.cpu:
        print("SKIP all: no CUDA device"); return 0
    print("device:", torch.cuda.get_device_name(0) if not a.cpu else "cpu", "| torch", torch.__version__, flush=True)
    from llmfactory.cli import env_info
    print(json.dumps(env_info(), indent=1), flush=True)

    adapter = {}
    def lora_bf16():
        ok, detail, out = check_learns("lora")
        adapter["path"] = out
        return ok, detail
    record("sft lora bf16", lora_bf16)
    record("sft qlora 4-bit nf4", lambda: check_learns("q4", quantization_bit=4))
    record("sft qlora 8-bit", lambda: check_learns("q8", quantization_bit=8))
    record("sft full bf16 sdpa", lambda: check_learns("full", finetuning_type="full", learning_rate=1e-3, flash_attn="sdpa"))
    record("dpo lora bf16", lambda: check_learns("dpo", stage="dpo", dataset="math_pairs_train", max_samples=32,
                                                 per_device_train_batch_size=8, max_steps=40))
    full = dict(finetuning_type="full", learning_rate=1e-3, flash_attn="sdpa")  # a reference model loaded beside the policy
    record("dpo full bf16", lambda: check_learns("dpo-full", stage="dpo", dataset="math_pairs_train", max_samples=32, max_steps=40, **full))
    record("kto full bf16", lambda: check_learns("kto-full", stage="kto", dataset="math_kto_train", max_samples=32, max_steps=40, **full))
    rm = {}
    def ppo_full():
        rm["path"], m, _ = train(stage="rm", dataset="math_pairs_train", max_samples=32, max_steps=20, finetuning_type="full", learning_rate=1e-3)
        return check_rewards("ppo-full", stage="ppo", dataset="math_train", max_samples=64, max_steps=8, logging_steps=2, max_new_tokens=8,
                             reward_model=rm["path"], reward_model_type="full", **dict(full, learning_rate=2e-5))
    record("ppo full bf16 (full reward model)", ppo_full)
    record("grpo full bf16", lambda: check_rewards("grpo-full", stage="grpo", dataset="math_train", max_samples=64, max_steps=8, logging_steps=2,
                                                   max_new_tokens=8, reward_funcs="number_match,digit_format", pref_beta=0.04,
                                                   **dict(full, learning_rate=2e-5)))

    def fa2():
        try:
            import flash_attn  # noqa: F401
            return check_learns("fa2", flash_attn="fa2")
        except ImportError:
            from llmfactory.hparams import ConfigError
            try: train(flash_attn="fa2", max_steps=1)
            except (ConfigError, ImportError, ValueError) as e: return None, f"flash-attn not installed; clear error: {str(e)[:160]}"
            return False, "fa2 asked without flash-attn and no error"
    record("flash_attention_2", fa2)

    def chat_and_export():
        import llmfactory
        from llmfactory.export import export_model
        from llmfactory.hparams import get_infer_args
        cm = llmfactory.ChatModel(dict(model_name_or_path="tiny-llama", adapter_name_or_path=adapter["path"], template="default",
                                       max_new_tokens=16, temperature=0))
        reply = cm.chat([{"role": "user", "content": "Hello"}])[0].response_text
        exp = tempfile.mkdtemp()
        m, d, f, _ = get_infer_args(dict(model_name_or_path="tiny-llama", adapter_name_or_path=adapter["path"], template="default",
                                         export_dir=exp, export_device="auto"))
        export_model(m, d, f)
        cm2 = llmfactory.ChatModel(dict(model_name_or_path=exp, template="default", max_new_tokens=16, temperature=0))
        reply2 = cm2.chat([{"role": "user", "content": "Hello"}])[0].response_text
        return reply == reply2, f"adapter reply {reply!r}; merged export reply {reply2!r}"
    record("chat with adapter, merged export", chat_and_export)

    n_fail = sum(r["status"] == "FAIL" for r in results)
    print(f"{sum(r['status'] == 'PASS' for r in results)} passed, {n_fail} failed, {sum(r['status'] == 'SKIP' for r in results)} skipped")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "gpu_check.json").write_text(json.dumps(results, indent=1))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
