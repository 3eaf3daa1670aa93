"""Side by side with LLaMA-Factory 0.9.5 on this machine: the three peer configs through both, alternating A/B.

    python bench/peer.py [--quick] [--runs sft_lora,sft_full,dpo_lora] [--repeat 2]
    python bench/peer.py --prep-only [--repeat 3]   # preprocessing rows/s of both sides only (no training)

Needs `../shared/peer` beside the project (skips with a message otherwise) and the peer venv that
`../shared/peer/run_peer.sh` builds under `$PEER_DIR` (default `~/.cache/llmf-peer`; built once, reused here).
Both sides train the same model folder (`$PEER_DIR/models/tiny`, built with the peer's `make_tiny.py` if missing)
on the same data folder (`$PEER_DIR/data`, LLaMA-Factory's `dataset_info.json` unchanged) with the same YAML;
llmfactory only gets its own `output_dir`. Both are launched and measured by the peer's own `measure.py`
(GNU `time -v` peak RSS, train_results.json, trainer_state.json), so the figures are taken the same way.

Printed, one line per figure: `<run> <figure> lf=<x> llmf=<y> ratio=<llmf/lf>`, for samples/s, real (non-padding)
tokens/s, peak RSS, time to first step (launch -> first optimizer step: imports, loading, preprocessing), the first
logged loss (must agree within 1%), the padding share of the batches, achieved model FLOP/s and MFU; then the
preprocessing rows/s of each side on the same rows. Each training run prints the load average at its start.

FLOP count (useful work, real tokens only, attention scores left out; N = the matmul parameters: all but the input
embedding, which is a lookup; the LM head counts):
full fine-tuning 6·N·tokens (forward 2N, backward 4N); LoRA 4·N·tokens (forward 2N, backward through the frozen
weights for activation gradients 2N, no weight gradients; the rank-8 adapters are <3% and left out); DPO with LoRA
adds the reference forward: 6·N·tokens over chosen+rejected tokens. MFU = achieved / fp32 matmul peak measured in
this run (torch.mm of 2048x2048; the tiny model's own GEMM shape is printed beside it).
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
KIT = SHARED / "peer"
PEER_DIR = Path(os.environ.get("PEER_DIR", Path.home() / ".cache" / "llmf-peer"))
RUNS = {"sft_lora": ("sft", "lora"), "sft_full": ("sft", "full"), "dpo_lora": ("dpo", "lora")}
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
           HF_HOME=str(PEER_DIR / ".hf_home"), PYTHONWARNINGS="ignore", DISABLE_VERSION_CHECK="1")

# preprocessing, run in a fresh process of each side: `python - SIDE CONFIG REPEAT` -> one JSON line
PREP = textwrap.dedent('''
import json, sys, time, yaml
side, cfg_path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = yaml.safe_load(open(cfg_path)); cfg["overwrite_cache"] = True
import datasets; datasets.disable_progress_bars()
pairwise = cfg["stage"] in ("dpo", "rm")
if side == "lf":
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from llamafactory.data import get_template_and_fix_tokenizer, get_dataset
    m, d, t, f, _ = get_train_args(cfg)
    mod = load_tokenizer(m); tpl = get_template_and_fix_tokenizer(mod["tokenizer"], d)
    run = lambda: get_dataset(tpl, m, d, t, "rm" if pairwise else "sft", **mod)["train_dataset"]
else:
    from llmfactory.hparams import get_train_args
    from llmfactory.model import load_tokenizer
    from llmfactory.template_auto import get_template_for
    from llmfactory.data import get_dataset
    a = get_train_args(cfg); tok = load_tokenizer(a.model); tpl = get_template_for(a.data, tok)
    run = lambda: get_dataset(a.data, tpl, tok, stage=cfg["stage"], seed=a.training.seed)["train_dataset"]
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter(); ds = run(); best = min(best, time.perf_counter() - t0)
keys = ["chosen_input_ids", "rejected_input_ids"] if pairwise else ["input_ids"]
lens = [[len(x) for x in ds[k]] for k in keys]
print("PREP " + json.dumps({"rows": len(ds), "seconds": best, "lens": lens}))
''')


def sh(cmd, **kw):
    return subprocess.run(cmd, env=ENV, text=True, capture_output=True, **kw)


def ensure_peer() -> str | None:
    "Copies the kit into PEER_DIR as run_peer.sh does and builds the tiny model; the reason to skip, if any"
    py = PEER_DIR / "venv" / "bin" / "python"
    if not (PEER_DIR / "venv" / "bin" / "llamafactory-cli").exists():
        return f"no LLaMA-Factory venv at {PEER_DIR}/venv: run {KIT}/run_peer.sh once to build it"
    for sub in ("data", "configs", "logs", "logs_llmf", "configs_llmf"): (PEER_DIR / sub).mkdir(parents=True, exist_ok=True)
    for f in (KIT / "configs").glob("*.yaml"): shutil.copy(f, PEER_DIR / "configs")
    shutil.copy(KIT / "dataset_info.json", PEER_DIR / "data")
    for f in ("alpaca_en_demo.json", "dpo_en_demo.json"): shutil.copy(SHARED / "data" / f, PEER_DIR / "data")
    for f in ("make_tiny.py", "measure.py"): shutil.copy(KIT / f, PEER_DIR)
    if not (PEER_DIR / "models" / "tiny" / "model.safetensors").exists():
        r = sh([str(py), "make_tiny.py", "models/tiny", "--size", "tiny", "--vocab-size", "4000", "--seed", "0"], cwd=PEER_DIR)
        if r.returncode: return "make_tiny.py failed:\n" + r.stderr[-2000:]
    return None


def configs(name: str, quick: bool) -> tuple[Path, Path]:
    "The LLaMA-Factory config (quick: fewer samples) and the same one for llmfactory with its own output_dir"
    import yaml
    cfg = yaml.safe_load((PEER_DIR / "configs" / f"{name}.yaml").read_text())
    if quick: cfg["max_samples"] = cfg["max_samples"] // 5
    lf = PEER_DIR / "configs" / f"{name}{'_quick' if quick else ''}.yaml"
    lf.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ours = PEER_DIR / "configs_llmf" / lf.name
    ours.write_text(yaml.safe_dump(dict(cfg, output_dir=cfg["output_dir"].replace("out/", "out_llmf/")), sort_keys=False))
    return lf, ours


def llmf_cli() -> Path:
    "A launcher for `llmfactory` from this checkout, in this interpreter, for measure.py's `--cli`"
    p = PEER_DIR / "llmf-cli"
    p.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} -c "
                 f"'import sys; from llmfactory.cli import main; sys.exit(main(sys.argv[1:]))' \"$@\"\n")
    p.chmod(0o755)
    return p


def train_once(side: str, name: str, cfg: Path) -> dict:
    "One measured training run (peer measure.py) of `side` ('lf' or 'llmf'); its record plus load and time to first step"
    py = PEER_DIR / "venv" / "bin" / "python"
    logdir = "logs" if side == "lf" else "logs_llmf"
    cmd = [str(py), "measure.py", "--name", name, "--config", str(cfg), "--logdir", logdir]
    if side == "llmf": cmd += ["--cli", str(llmf_cli())]
    load = os.getloadavg()
    r = sh(cmd, cwd=PEER_DIR)
    rec = json.loads((PEER_DIR / logdir / f"{name}.json").read_text()) if (PEER_DIR / logdir / f"{name}.json").exists() else {}
    rec["load_start"] = load
    if r.returncode:
        print(f"  [{side} {name}] failed rc={r.returncode}: {r.stderr[-1500:]}", flush=True); rec["failed"] = True
    # time to first step: first tqdm update "1/N" of the training bar
    for line in (PEER_DIR / logdir / f"{name}.log").read_text(errors="replace").splitlines():
        m = re.match(r"\[\s*([\d.]+)\]\s.*\|\s*1/\d+ \[", line)
        if m: rec["t_first_step_s"] = float(m.group(1)); break
    print(f"  {side:4s} {name:9s} load={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} samples/s={rec.get('train_samples_per_second', 'NA')} "
          f"rss_mb={rec.get('peak_rss_mb', 'NA')} first_loss={rec.get('first_logged_loss', 'NA')} "
          f"t_first_step={rec.get('t_first_step_s', 'NA')} other_cores={rec.get('other_procs_cores_avg', 'NA')}", flush=True)
    return rec


def prep_once(side: str, cfg: Path, repeat: int) -> dict:
    py = str(PEER_DIR / "venv" / "bin" / "python") if side == "lf" else sys.executable
    env = dict(ENV, PYTHONPATH=str(ROOT)) if side == "llmf" else ENV
    r = subprocess.run([py, "-", side, str(cfg), str(repeat)], input=PREP, env=env, cwd=PEER_DIR, text=True, capture_output=True)
    out = [l for l in r.stdout.splitlines() if l.startswith("PREP ")]
    if not out: print(f"  [{side} preprocess] failed: {r.stderr[-1500:]}"); return {}
    return json.loads(out[-1][5:])


def matmul_peak() -> dict:
    "fp32 GFLOP/s of torch.mm: large square, and the tiny model's MLP shape (2048 tokens x 256 -> 688)"
    import torch
    def rate(m, k, n, secs=1.5):
        a, b = torch.randn(m, k), torch.randn(k, n); torch.mm(a, b)
        it, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < secs: torch.mm(a, b); it += 1
        return 2 * m * k * n * it / (time.perf_counter() - t0) / 1e9
    return {"square2048": rate(2048, 2048, 2048), "tiny_mlp": rate(2048, 256, 688)}


def padding_share(lens: list[list[int]], batch: int, multiple: int = 8, seed: int = 42, flat: bool = False) -> float:
    "Share of padding in randomly drawn batches (as the Trainer's shuffled sampler makes them); `flat`: one unpadded row per batch"
    import random
    rng, n = random.Random(seed), len(lens[0])
    idx = list(range(n)); rng.shuffle(idx)
    real = pad = 0
    for i in range(0, n, batch):
        b = [l[j] for l in lens for j in idx[i:i + batch]]
        width = -(-(sum(b) if flat else max(b)) // multiple) * multiple
        real += sum(b); pad += width * (1 if flat else len(b)) - sum(b)
    return pad / (real + pad)


def fmt(v, f="{:.3g}"): return "NA" if v is None else f.format(v)


def line(run, fig, lf, ours, unit="", f="{:.3g}"):
    ratio = (ours / lf) if (lf and ours is not None) else None
    print(f"{run:9s} {fig:22s} lf={fmt(lf, f)}{unit} llmf={fmt(ours, f)}{unit} ratio={fmt(ratio, '{:.2f}')}", flush=True)
    return ratio


def prep_only(names: list[str], repeat: int, prep_repeat: int) -> int:
    "Preprocessing rows/s of both sides, `repeat` fresh processes each, alternating; the best of each side and their ratio"
    print(f"machine: {os.cpu_count()} cpus load={os.getloadavg()}", flush=True)
    for name in dict.fromkeys(names):
        lf_cfg, our_cfg = configs(name, False)
        rps = {"lf": [], "llmf": []}
        for i in range(repeat):
            for side in (("lf", "llmf") if i % 2 == 0 else ("llmf", "lf")):
                r = prep_once(side, lf_cfg if side == "lf" else our_cfg, prep_repeat)
                if r: rps[side].append(r["rows"] / r["seconds"])
        print(f"  {name}: lf {[round(x) for x in rps['lf']]} llmf {[round(x) for x in rps['llmf']]}", flush=True)
        line(name, "preprocess rows/s", max(rps["lf"], default=None), max(rps["llmf"], default=None), f="{:.0f}")
    print(f"end load={os.getloadavg()}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a fifth of the samples, one repeat")
    p.add_argument("--runs", default="sft_lora,sft_full,dpo_lora")
    p.add_argument("--repeat", type=int, default=2, help="A/B pairs per run (the order alternates)")
    p.add_argument("--prep-repeat", type=int, default=3)
    p.add_argument("--prep-only", action="store_true", help="only the preprocessing rows/s, --repeat fresh processes per side, alternating")
    p.add_argument("--json", default=None, help="also write each run's figures (both sides) to this file, for the benchmarks page")
    a = p.parse_args(argv)
    if not KIT.exists(): print(f"skip: no LLaMA-Factory peer kit at {KIT}"); return 0
    why = ensure_peer()
    if why: print(f"skip: {why}"); return 0
    if a.prep_only: return prep_only(a.runs.split(","), a.repeat, a.prep_repeat)
    repeat = 1 if a.quick else a.repeat
    peak = matmul_peak()
    print(f"machine: {os.cpu_count()} cpus load={os.getloadavg()} fp32 matmul GFLOP/s: 2048^3={peak['square2048']:.1f} "
          f"tiny-mlp(2048x256x688)={peak['tiny_mlp']:.1f}", flush=True)
    nparams = None
    summary, records = [], []
    for name in a.runs.split(","):
        stage, ft = RUNS[name]
        lf_cfg, our_cfg = configs(name, a.quick)
        recs = {"lf": [], "llmf": []}
        for i in range(repeat):
            for side in (("lf", "llmf") if i % 2 == 0 else ("llmf", "lf")):
                recs[side].append(train_once(side, name, lf_cfg if side == "lf" else our_cfg))
        full_lf, full_ours = configs(name, False)  # preprocessing always on the full run's rows
        prep = {side: prep_once(side, full_lf if side == "lf" else full_ours, a.prep_repeat) for side in ("lf", "llmf")}
        if nparams is None:
            from safetensors import safe_open
            import math
            with safe_open(str(PEER_DIR / "models" / "tiny" / "model.safetensors"), "pt") as f:
                # matmul parameters: the input embedding is a lookup, no FLOPs (lm_head, tied or not, counts)
                nparams = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if "embed_tokens" not in k)
                cfg_m = json.loads((PEER_DIR / "models" / "tiny" / "config.json").read_text())
                if cfg_m.get("tie_word_embeddings"): nparams += cfg_m["vocab_size"] * cfg_m["hidden_size"]
                print(f"model: {nparams:,} matmul parameters (N of the FLOP count)")
        best = lambda side, k, fn=max: fn([r[k] for r in recs[side] if r.get(k) is not None], default=None)
        # the quickest run of each side: on a shared machine the slower ones carry others' load
        sps = {s: best(s, "train_samples_per_second") for s in recs}
        toks = {s: (statistics.mean([sum(x) for x in zip(*prep[s]["lens"])]) if prep.get(s) else None) for s in recs}
        print(f"--- {name} ({repeat} A/B pair(s), best of each side; tokens/sample lf={fmt(toks['lf'])} llmf={fmt(toks['llmf'])})")
        r_sps = line(name, "samples/s", sps["lf"], sps["llmf"])
        tps = {s: (sps[s] * toks[s] if sps[s] and toks[s] else None) for s in recs}
        line(name, "real tokens/s", tps["lf"], tps["llmf"])
        r_rss = line(name, "peak RSS MB", best("lf", "peak_rss_mb", min), best("llmf", "peak_rss_mb", min), f="{:.0f}")
        line(name, "time to first step s", best("lf", "t_first_step_s", min), best("llmf", "t_first_step_s", min), f="{:.1f}")
        l0 = {s: (recs[s][0].get("first_logged_loss")) for s in recs}
        r_loss = line(name, "first logged loss", l0["lf"], l0["llmf"], f="{:.4f}")
        ok = r_loss is not None and abs(r_loss - 1) <= 0.01
        print(f"{name:9s} {'loss parity (1%)':22s} {'OK' if ok else 'FAIL'}")
        batch = 4 if stage == "sft" else 2
        # llmfactory runs sft batches padding-free (one row, padded to a multiple of 8); dpo batches stay padded
        pads = {s: (padding_share(prep[s]["lens"], batch, flat=s == "llmf" and stage == "sft") if prep.get(s) else None) for s in recs}
        line(name, "padding share (est.)", pads["lf"], pads["llmf"], f="{:.2f}")
        k = (6 if ft == "full" or stage == "dpo" else 4)
        flops = {s: (k * nparams * tps[s] if tps[s] else None) for s in recs}
        line(name, f"model GFLOP/s ({k}N/tok)", flops["lf"] and flops["lf"] / 1e9, flops["llmf"] and flops["llmf"] / 1e9)
        line(name, "MFU vs 2048^3 mm", flops["lf"] and flops["lf"] / 1e9 / peak["square2048"],
             flops["llmf"] and flops["llmf"] / 1e9 / peak["square2048"], f="{:.3f}")
        rps = {s: (prep[s]["rows"] / prep[s]["seconds"] if prep.get(s) else None) for s in recs}
        r_prep = line(name, "preprocess rows/s", rps["lf"], rps["llmf"], f="{:.0f}")
        summary.append((name, r_sps, r_rss, r_prep, ok))
        records.append({"run": name, "samples_per_s": sps, "real_tokens_per_s": tps, "time_to_first_step_s": {s: best(s, "t_first_step_s", min) for s in recs},
                        "peak_rss_mb": {s: best(s, "peak_rss_mb", min) for s in recs}, "first_loss": l0, "padding_share": pads,
                        "mfu": {s: flops[s] and flops[s] / 1e9 / peak["square2048"] for s in recs}, "preprocess_rows_per_s": rps})
    print("--- acceptance: samples/s >= 1.3x, peak RSS <= 1.0x, preprocessing >= 2x, loss within 1%")
    for name, r_sps, r_rss, r_prep, ok in summary:
        chk = lambda c: "ok" if c else "SHORT"
        print(f"{name:9s} samples/s {fmt(r_sps, '{:.2f}')}x {chk(r_sps and r_sps >= 1.3)}  RSS {fmt(r_rss, '{:.2f}')}x {chk(r_rss and r_rss <= 1.0)}  "
              f"prep {fmt(r_prep, '{:.2f}')}x {chk(r_prep and r_prep >= 2)}  loss {'ok' if ok else 'FAIL'}")
    print(f"end load={os.getloadavg()}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "quick": a.quick, "repeat": repeat,
                                            "runs": records}, indent=1))
    return 0


if __name__ == "__main__": sys.exit(main())
