"""Start-up: how fast the command line answers, what it imports, and time to the first training step beside LLaMA-Factory.

    python bench/startup.py [--skip-train] [--repeat 1] [--samples 40]

1. Each quick command (`version`, `keys`, `--help`, `train --help`, `api --help`, and `train` on a config with an unknown key
   or a bad value) runs in a fresh interpreter: wall seconds, exit code, whether `torch` was imported on its path (read
   from `sys.modules` when the command returns), and the last line it printed. The figures are what a user waits for.
2. The import cost of the stack beside it, each in a fresh interpreter: `import torch`, `transformers`, `datasets`, `peft`, `trl`.
3. Time to first optimizer step of `train` on the peer's tiny Llama (`sft_lora` from `../shared/peer/configs`, `--samples`
   rows), both sides launched and timed by the peer's `measure.py` as `bench/peer.py` does (seconds from launch to the first
   tqdm update `1/N` of the training bar: imports, model and data loading, preprocessing, the first step), alternating
   the sides `--repeat` times; best of each side and the ratio llmf/lf. Run names `startup_*` keep its logs apart from peer.py's.
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer  # noqa: E402  (bench/peer.py: the peer venv, measure.py, its configs)

PROBE = ("import sys, io, contextlib\n"
         "from llmfactory.cli import main\n"
         "out = io.StringIO()\n"
         "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
         "    try: code = main(sys.argv[1:])\n"
         "    except SystemExit as e: code = e.code\n"
         "last = (out.getvalue().strip().splitlines() or [''])[-1]\n"
         "print('PROBE', code, 'torch' in sys.modules, last[:110])\n")


def probe(argv: list[str]) -> tuple[float, str]:
    env = dict(peer.ENV, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, text=True, capture_output=True, cwd=tempfile.gettempdir())
    secs = time.perf_counter() - t
    line = next((l for l in r.stdout.splitlines() if l.startswith("PROBE ")), f"PROBE ? ? {r.stderr.strip()[-110:]}")
    return secs, line[6:]


def import_secs(mod: str) -> float:
    r = subprocess.run([sys.executable, "-c", f"import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"],
                       env=peer.ENV, text=True, capture_output=True)
    return float(r.stdout.strip() or "nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-train", action="store_true", help="only the command line figures")
    p.add_argument("--repeat", type=int, default=1, help="training runs per side (alternating)")
    p.add_argument("--samples", type=int, default=40, help="max_samples of the training runs")
    a = p.parse_args(argv)
    print(f"machine: {os.cpu_count()} cpus load={','.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    d = Path(tempfile.mkdtemp(prefix="llmf-startup-"))
    base = dict(model_name_or_path="tiny-llama", stage="sft", dataset="alpaca_en_demo", dataset_dir=str(ROOT / "data"), output_dir=str(d / "out"))
    import yaml
    (d / "unknown_key.yaml").write_text(yaml.safe_dump(dict(base, learnin_rate=1e-4)))
    (d / "bad_value.yaml").write_text(yaml.safe_dump(dict(base, learning_rate="abc")))
    cases = [["version"], ["--help"], ["keys", "learning_rate"], ["train", "--help"], ["api", "--help"],
             ["train", str(d / "unknown_key.yaml")], ["train", str(d / "bad_value.yaml")]]
    print(f"\n{'command':34s} {'seconds':>8s} {'exit':>4s} {'torch':>6s}  last line")
    for c in cases:
        secs, line = probe(c)
        code, torch_in, last = (line.split(" ", 2) + ["", ""])[:3]
        name = " ".join(x if not x.endswith(".yaml") else Path(x).name for x in c)
        print(f"llmfactory {name:23s} {secs:8.2f} {code:>4s} {torch_in:>6s}  {last}", flush=True)
    print("\nimports, each in a fresh interpreter:", "  ".join(f"{m} {import_secs(m):.2f}s" for m in ("torch", "transformers", "datasets", "peft", "trl")), flush=True)
    if a.skip_train: return 0

    why = peer.ensure_peer()
    if why: print(f"\nno LLaMA-Factory side: {why}"); return 0
    cfg = yaml.safe_load((peer.PEER_DIR / "configs" / "sft_lora.yaml").read_text())
    cfg.update(max_samples=a.samples, output_dir="out/startup_sft_lora")
    lf = peer.PEER_DIR / "configs" / "startup_sft_lora.yaml"
    lf.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ours = peer.PEER_DIR / "configs_llmf" / lf.name
    ours.write_text(yaml.safe_dump(dict(cfg, output_dir="out_llmf/startup_sft_lora"), sort_keys=False))
    print(f"\ntime to first optimizer step, sft_lora on the peer's tiny Llama, {a.samples} rows:", flush=True)
    best = {}
    for _ in range(a.repeat):
        for side, c in (("lf", lf), ("llmf", ours)):
            t = peer.train_once(side, "startup_sft_lora", c).get("t_first_step_s")
            if t is not None: best[side] = min(best.get(side, t), t)
    lf_t, ll_t = best.get("lf"), best.get("llmf")
    ratio = f"{ll_t / lf_t:.2f}" if lf_t and ll_t else "NA"
    print(f"time to first step s  lf={lf_t}  llmf={ll_t}  ratio={ratio}  (llmf/lf, lower is better)")
    return 0


if __name__ == "__main__": sys.exit(main())
