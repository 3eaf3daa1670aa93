"""How the cost of data preparation and training grows with the data: llmfactory beside LLaMA-Factory 0.9.5.

    python bench/scale.py [--sizes 1000,10000,100000] [--no-train] [--json bench/results/scale.json]

The rows are LLaMA-Factory's `alpaca_en_demo` repeated with variation (each copy's instruction and reply carry
its copy number, so no two rows are equal and no cache can dedupe them), written as one alpaca JSON file per size
with a `dataset_info.json` entry, and read unchanged by both sides with the same tokenizer (the peer's tiny model,
`default` template, cutoff 512, one preprocessing worker). Per size and side, each in a fresh process:

- preprocess: align + tokenize from scratch (`overwrite_cache`), rows/s and the process's peak RSS;
- cache reuse: the same call again in a new process with caches allowed (the second of two runs is timed);
- train: `train` for 3 steps through each side's CLI under GNU `time -v`: peak RSS of the whole run
  (preprocessing included); llmfactory also with `streaming: true`, whose RSS must stay flat as the data grows.

Needs `../shared/peer` and the peer venv (see bench/peer.py); prints `skip: ...` otherwise. One line per figure:
`scale <rows> <figure> lf=<x> llmf=<y> ratio=<llmf/lf>`; `--json` also writes the figures for the benchmarks page.
"""
import argparse, json, os, re, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer import ENV, KIT, PEER_DIR, ROOT, SHARED, ensure_peer, llmf_cli  # noqa: E402

PREP = textwrap.dedent('''
import json, resource, sys, time
side, data_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = dict(model_name_or_path="models/tiny", stage="sft", do_train=True, finetuning_type="lora", dataset="scale", dataset_dir=data_dir,
           template="default", cutoff_len=512, overwrite_cache=(mode == "fresh"), preprocessing_num_workers=1,
           output_dir=data_dir + "/out_prep_" + side, report_to="none")
import datasets; datasets.disable_progress_bars()
if side == "lf":
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from llamafactory.data import get_template_and_fix_tokenizer, get_dataset
    m, d, t, f, _ = get_train_args(cfg)
    mod = load_tokenizer(m); tpl = get_template_and_fix_tokenizer(mod["tokenizer"], d)
    run = lambda: get_dataset(tpl, m, d, t, "sft", **mod)["train_dataset"]
else:
    from llmfactory.hparams import get_train_args
    from llmfactory.model import load_tokenizer
    from llmfactory.template_auto import get_template_for
    from llmfactory.data import get_dataset
    a = get_train_args(cfg); tok = load_tokenizer(a.model); tpl = get_template_for(a.data, tok)
    run = lambda: get_dataset(a.data, tpl, tok, stage="sft", seed=a.training.seed)["train_dataset"]
if mode == "cache": run()  # fills the cache; the next call is the one timed
t0 = time.perf_counter(); ds = run(); secs = time.perf_counter() - t0
print("PREP " + json.dumps({"rows": len(ds), "seconds": secs, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
''')


def make_data(src: Path, n: int, out: Path) -> Path:
    "`n` alpaca rows from `src`, repeated with the copy number in instruction and reply; a dataset folder named `scale`"
    rows = json.loads(src.read_text())
    out.mkdir(parents=True, exist_ok=True)
    data = []
    for i in range(n):
        r, k = rows[i % len(rows)], i // len(rows)
        data.append({"instruction": f"{r['instruction']} (variant {k})", "input": r.get("input", ""), "output": f"{r['output']} [{k}]"})
    (out / "scale.json").write_text(json.dumps(data))
    (out / "dataset_info.json").write_text(json.dumps({"scale": {"file_name": "scale.json"}}))
    return out


def prep(side: str, data_dir: Path, mode: str, hf_home: Path) -> dict:
    py = str(PEER_DIR / "venv" / "bin" / "python") if side == "lf" else sys.executable
    env = dict(ENV, HF_HOME=str(hf_home), LLMFACTORY_CACHE=str(hf_home / "llmf"))
    if side == "llmf": env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([py, "-", side, str(data_dir), mode], input=PREP, env=env, cwd=PEER_DIR, text=True, capture_output=True)
    out = [l for l in r.stdout.splitlines() if l.startswith("PREP ")]
    if not out: print(f"  [{side} {mode}] failed: {r.stderr[-1500:]}", flush=True); return {}
    return json.loads(out[-1][5:])


def train_rss(side: str, data_dir: Path, hf_home: Path, streaming: bool = False) -> float | None:
    "Peak RSS (MB) of a 3-step LoRA run through the side's CLI, preprocessing included"
    import yaml
    cfg = dict(model_name_or_path="models/tiny", stage="sft", do_train=True, finetuning_type="lora", lora_target="all", lora_rank=8,
               dataset="scale", dataset_dir=str(data_dir), template="default", cutoff_len=512, overwrite_cache=True,
               preprocessing_num_workers=1, output_dir=str(data_dir / f"out_{side}{'_stream' if streaming else ''}"), max_steps=3,
               per_device_train_batch_size=4, learning_rate=1e-4, logging_steps=1, save_strategy="no", report_to="none",
               overwrite_output_dir=True)
    if streaming: cfg |= dict(streaming=True, overwrite_cache=False)
    path = data_dir / f"train_{side}{'_stream' if streaming else ''}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = [str(PEER_DIR / "venv" / "bin" / "llamafactory-cli")] if side == "lf" else [str(llmf_cli())]
    env = dict(ENV, HF_HOME=str(hf_home), LLMFACTORY_CACHE=str(hf_home / "llmf"))
    r = subprocess.run(["/usr/bin/time", "-v", *cli, "train", str(path)], env=env, cwd=PEER_DIR, text=True, capture_output=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    if r.returncode or not m: print(f"  [{side} train{' streaming' if streaming else ''}] failed rc={r.returncode}: {r.stderr[-1200:]}", flush=True); return None
    return int(m.group(1)) / 1024


def line(n, fig, lf, ours, f="{:.0f}"):
    ratio = ours / lf if lf and ours is not None else None
    fmt = lambda v, g=f: "NA" if v is None else g.format(v)
    print(f"scale {n:>7d} {fig:24s} lf={fmt(lf)} llmf={fmt(ours)} ratio={fmt(ratio, '{:.2f}')}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--no-train", action="store_true", help="preprocessing and cache figures only")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    if not KIT.exists(): print(f"skip: no LLaMA-Factory peer kit at {KIT}"); return 0
    why = ensure_peer()
    if why: print(f"skip: {why}"); return 0
    print(f"machine: {os.cpu_count()} cpus load={os.getloadavg()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, a.sizes.split(",")):
            data = make_data(SHARED / "data" / "alpaca_en_demo.json", n, Path(tmp) / f"d{n}")
            rec = {"rows": n}
            for side in ("lf", "llmf"):  # each side its own cache folder, fresh per size
                home = Path(tmp) / f"home_{side}_{n}"
                fresh, cached = prep(side, data, "fresh", home), prep(side, data, "cache", home)
                rec[side] = {"prep_rows_per_s": fresh and fresh["rows"] / fresh["seconds"], "prep_rss_mb": fresh and fresh["rss_mb"],
                             "cache_reuse_s": cached and cached["seconds"]}
                if not a.no_train:
                    rec[side]["train_rss_mb"] = train_rss(side, data, home)
                    if side == "llmf": rec[side]["train_rss_streaming_mb"] = train_rss(side, data, home, streaming=True)
            lf, us = rec["lf"], rec["llmf"]
            line(n, "preprocess rows/s", lf["prep_rows_per_s"], us["prep_rows_per_s"])
            line(n, "preprocess peak RSS MB", lf["prep_rss_mb"], us["prep_rss_mb"])
            line(n, "cache reuse s", lf["cache_reuse_s"], us["cache_reuse_s"], "{:.2f}")
            if not a.no_train:
                line(n, "train peak RSS MB", lf.get("train_rss_mb"), us.get("train_rss_mb"))
                print(f"scale {n:>7d} {'train RSS streaming MB':24s} llmf={us.get('train_rss_streaming_mb') or 0:.0f}", flush=True)
            results.append(rec)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
