"""Resume check: training runs killed with SIGKILL at random steps and resumed with `resume_from_checkpoint: auto` end as an
uninterrupted run does: the same last logged loss, the same `train_loss` in `all_results.json`, and each step logged once in
`trainer_log.jsonl`.

    python bench/resume_check.py [--quick] [--runs 5] [--seed 0] [--stage sft] [--keep]

Each run is `python -m llmfactory.cli train CONFIG` on the tiny Llama (full tuning, fp32, CPU, a fixed seed, a checkpoint every
2 steps, a log line every step or --logging-steps), killed once when the log reaches a random step (plus a random fraction of a step, so that some
kills land in the middle of a checkpoint save), then run again with `resume_from_checkpoint: auto`. Prints one line per run and a
verdict; exits 1 if a run differs. `--quick` kills one run.
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-4

def config(out:str, stage:str, steps:int, logging_steps:int=1) -> dict:
    data = {"sft": "alpaca_demo", "rm": "math_pairs_train", "dpo": "math_pairs_train", "kto": "math_kto_train"}[stage]
    return dict(model_name_or_path="tiny-llama", stage=stage, dataset=data, dataset_dir=str(ROOT / "data"), template="default",
                finetuning_type="full", cutoff_len=64, max_samples=64, per_device_train_batch_size=4, learning_rate=1e-3,
                max_steps=steps, logging_steps=logging_steps, save_steps=2, save_total_limit=3, output_dir=out, report_to="none",
                disable_tqdm=True, seed=0, use_cpu=True, bf16=False, fp16=False, plot_loss=False)

def launch(cfg:dict, log_to) -> subprocess.Popen:
    path = Path(cfg["output_dir"] + ".yaml")
    path.write_text(json.dumps(cfg))  # JSON is YAML
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "llmfactory.cli", "train", str(path)], cwd=ROOT, env=env, stdout=log_to, stderr=subprocess.STDOUT)

def records(out:str) -> list[dict]:
    path, recs = Path(out) / "trainer_log.jsonl", []
    if not path.exists(): return recs
    for line in path.read_text().splitlines():
        try: recs.append(json.loads(line))
        except json.JSONDecodeError: pass
    return recs

def run_to_end(cfg:dict, log_to) -> None:
    p = launch(cfg, log_to)
    if p.wait() != 0: raise RuntimeError(f"training exited with {p.returncode}; see {log_to.name}")

def summary(out:str) -> dict:
    recs = records(out)
    losses = [(r["current_steps"], r["loss"]) for r in recs if "loss" in r]
    return dict(steps=[s for s, _ in losses], losses=[l for _, l in losses], final=losses[-1][1] if losses else None,
                train_loss=json.loads((Path(out) / "all_results.json").read_text())["train_loss"])

def rel(a:float, b:float) -> float: return abs(a - b) / max(abs(b), 1e-12)

def killed_run(cfg:dict, kill_step:int, frac:float, log_to, timeout:float=900) -> tuple[int, int|None, list[str]]:
    "Start a run, SIGKILL it once its log reaches `kill_step` (and `frac` of a step later); returns the last logged step, the last complete checkpoint and the half-written ones"
    p, t0, last, t_last, step_s = launch(cfg, log_to), time.time(), 0, None, 0.5
    while p.poll() is None and time.time() - t0 < timeout:
        recs = records(cfg["output_dir"])
        steps = [r["current_steps"] for r in recs if "loss" in r]
        if steps and steps[-1] != last:
            now = time.time()
            if t_last is not None: step_s = (now - t_last) / max(steps[-1] - last, 1)
            last, t_last = steps[-1], now
        if last >= kill_step:
            time.sleep(frac * step_s)
            break
        time.sleep(0.01)
    if p.poll() is not None: raise RuntimeError(f"the run ended (exit {p.returncode}) before the kill at step {kill_step}")
    os.kill(p.pid, signal.SIGKILL); p.wait()
    steps = [r["current_steps"] for r in records(cfg["output_dir"]) if "loss" in r]
    ckpts = sorted(int(c.name.split("-")[1]) for c in Path(cfg["output_dir"]).glob("checkpoint-*"))
    staged = sorted(c.name for c in (Path(cfg["output_dir"]) / ".staging").glob("checkpoint-*"))
    return (steps[-1] if steps else 0), (ckpts[-1] if ckpts else None), staged

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one killed run instead of --runs")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="max_steps of each run")
    ap.add_argument("--logging-steps", type=int, default=1, help="a log line every N steps (not a divisor of 2: the checkpoint falls between log lines)")
    ap.add_argument("--stage", default="sft", choices=["sft", "rm", "dpo", "kto"])
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    ap.add_argument("--keep", action="store_true", help="keep the output folders")
    a = ap.parse_args()
    runs, rng, work = 1 if a.quick else a.runs, random.Random(a.seed), Path(tempfile.mkdtemp(prefix="resume_check_"))
    print(f"resume check: stage {a.stage}, tiny-llama full fp32 on CPU, {a.steps} steps, checkpoints every 2 steps, a log line every {a.logging_steps}, {runs} killed run(s); "
          f"work dir {work}", flush=True)
    t0 = time.time()
    with open(work / "train.log", "w") as log_to:
        ref_dir = str(work / "uninterrupted")
        run_to_end(config(ref_dir, a.stage, a.steps, a.logging_steps), log_to)
        ref = summary(ref_dir)
        print(f"uninterrupted: final loss {ref['final']:.6f}, train_loss {ref['train_loss']:.6f}, steps logged {len(ref['steps'])} "
              f"({time.time() - t0:.0f}s)", flush=True)
        failures = 0
        for i in range(runs):
            out = str(work / f"run{i + 1}")
            cfg, kill_step, frac = config(out, a.stage, a.steps, a.logging_steps), rng.randint(2, a.steps - 2), rng.random()
            t1 = time.time()
            last, ckpt, staged = killed_run(cfg, kill_step, frac, log_to)
            run_to_end(dict(cfg, resume_from_checkpoint="auto"), log_to)
            got = summary(out)
            once = got["steps"] == list(range(a.logging_steps, a.steps + 1, a.logging_steps))
            r_final, r_train = rel(got["final"], ref["final"]), rel(got["train_loss"], ref["train_loss"])
            r_steps = max((rel(x, y) for x, y in zip(got["losses"], ref["losses"])), default=float("inf")) if once else float("inf")
            ok = once and r_final <= RTOL and r_train <= RTOL and r_steps <= RTOL
            failures += not ok
            half = f" (killed while saving {', '.join(staged)})" if staged else ""
            print(f"run {i + 1}: SIGKILL with the last log line at step {last} (target {kill_step} + {frac:.2f} step){half}, resumed from "
                  f"{'checkpoint-%d' % ckpt if ckpt else 'scratch'}: each step logged once: {'yes' if once else 'NO'} "
                  f"({len(got['steps'])} loss lines); final loss {got['final']:.6f} (rel diff {r_final:.1e}); "
                  f"train_loss {got['train_loss']:.6f} (rel diff {r_train:.1e}); max step-loss rel diff {r_steps:.1e}; "
                  f"{'PASS' if ok else 'FAIL'} ({time.time() - t1:.0f}s)", flush=True)
    verdict = "PASS" if failures == 0 else "FAIL"
    print(f"{verdict}: {runs - failures}/{runs} killed-and-resumed runs match the uninterrupted run (relative tolerance {RTOL:g}); "
          f"{time.time() - t0:.0f}s in all", flush=True)
    if not a.keep and failures == 0: shutil.rmtree(work, ignore_errors=True)
    return 0 if failures == 0 else 1

if __name__ == "__main__":
    sys.exit(main())
