"""Rows per second of llmfactory's data preprocessing (align + tokenize) on LLaMA-Factory's demo data.

    python bench/preprocess.py [--model tiny-llama] [--template default] [--workers 1] [--repeat 4]

Reads `../shared/data` (LLaMA-Factory's demo files beside the project); prints one line per measurement:
`preprocess <stage> <dataset> rows=<n> workers=<w> rows_per_s=<r> seconds=<s>`. Caches are bypassed
(`overwrite_cache`), so every run converts and tokenizes from scratch; the best of `--repeat` runs is printed.
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--template", default="default")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="runs per dataset; the best is reported")
    p.add_argument("--cutoff_len", type=int, default=1024)
    a = p.parse_args(argv)
    shared = Path(a.shared)
    if not (shared / "llamafactory_dataset_info.json").exists():
        print(f"no LLaMA-Factory data at {shared}"); return 1
    import datasets; datasets.disable_progress_bars()
    from transformers import AutoTokenizer
    from llmfactory.tiny import resolve_model_path
    from llmfactory.template_auto import get_template
    from llmfactory.hparams import DataArguments
    from llmfactory.data import get_dataset
    tok = AutoTokenizer.from_pretrained(resolve_model_path(a.model))
    tpl = get_template(a.template); tpl.fix_tokenizer(tok)
    info = json.loads((shared / "llamafactory_dataset_info.json").read_text())
    runs = [("sft", "alpaca_en_demo"), ("sft", "glaive_toolcall_en_demo"), ("dpo", "dpo_en_demo"), ("kto", "kto_en_demo")]
    with tempfile.TemporaryDirectory() as d:
        for stage, name in runs:
            e = dict(info[name]); src = shared / e["file_name"]
            if not src.exists(): continue
            (Path(d) / e["file_name"]).unlink(missing_ok=True); (Path(d) / e["file_name"]).symlink_to(src.resolve())
            (Path(d) / "dataset_info.json").write_text(json.dumps({name: e}))
            da = DataArguments(dataset=name, dataset_dir=d, cutoff_len=a.cutoff_len, overwrite_cache=True,
                               preprocessing_num_workers=a.workers if a.workers > 1 else None)
            dt = float("inf")
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                ds = get_dataset(da, tpl, tok, stage=stage)["train_dataset"]
                dt = min(dt, time.perf_counter() - t0)
            print(f"preprocess {stage} {name} rows={len(ds)} workers={a.workers} rows_per_s={len(ds) / dt:.0f} seconds={dt:.2f}", flush=True)
    return 0

if __name__ == "__main__": sys.exit(main())
