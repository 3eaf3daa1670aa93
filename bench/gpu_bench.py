"""Training throughput of a 0.5B-shaped Qwen2 on one GPU: sft-lora, sft-full and dpo-lora in bf16, with attention, kernel and
batching variants. Offline: the model is built from its config with random weights, the data are random token ids.

    python bench/gpu_bench.py [--budget 420] [--steps 30] [--runs sft_lora,sft_full,dpo_lora] [--out DIR]
    python bench/gpu_bench.py --device cpu --tiny      # the same code path on a CPU: tiny Qwen2, fp32, a few steps

Model: Qwen2-0.5B's shapes (hidden 896, 24 layers, 14 heads / 2 KV heads of 64, intermediate 4864, vocab 151936, tied
embeddings) as a `config.json` beside llmfactory's tiny Qwen2 tokenizer (only its pad id is used), loaded by
`llmfactory.model.load_model` with `train_from_scratch` (random weights, created on the GPU), the settings parsed by
`llmfactory.hparams.get_train_args` as a user's config would be: `flash_attn` sdpa or fa2, `enable_liger_kernel`, LoRA
rank 8 on all linear layers (`lora_target: all`), gradient checkpointing as llmfactory sets it (on with CUDA; `--no-gc`
turns it off). Trainers: `llmfactory.sft.CausalLMTrainer` for SFT (what `run_sft` uses: no logits beyond the label positions,
`linear_cross_entropy` for the tied head), `llmfactory.dpo.DPOTrainer` (sigmoid, beta 0.1, the LoRA policy with its adapter
disabled as the reference) for DPO. Packed SFT on SDPA switches to llmfactory's `packed_sdpa` as `run_sft` does (on a GPU it
keeps transformers' block-diagonal mask).

Data: random ids with lognormal lengths (SFT: median 384 tokens, prompt 20-60% of it masked with -100; DPO: prompt
median 192, each reply median 256), cut at `--cutoff` (2048). Batches: SFT 16 rows, DPO 8 pairs (16 rows).
- padded: `llmfactory.collators` pad each batch to its longest row (multiple of 8) with an attention mask.
- packed (padding-free): SFT rows go as ONE row with restarting `position_ids` (`SFTCollator(padding_free=True)`, what
  `llmfactory.sft.use_padding_free` turns on); DPO rows are run as one row of their real tokens by `DPOTrainer(padding_free=True)`.

Variants per run: hf padded and hf packed (the baseline: transformers' own SDPA and, for SFT, its loss over all logits through
`StageTrainer`), sdpa padded, sdpa packed, fa2 padded, fa2 packed, then Liger with sdpa packed and fa2 packed. fa2
needs flash-attn, Liger needs liger-kernel: when missing the variant prints `SKIP` with the reason. Liger patches
transformers' Qwen2 classes for the rest of the process, so its variants run after all the others.

Measured per variant, after `--warmup` steps, over up to `--steps` steps or its share of `--budget` seconds (the whole
run stays within about budget + one minute): samples/s, real (non-padding) tokens/s, padding share of the computed
tokens, peak GPU memory (`torch.cuda.max_memory_allocated`, model + optimizer + activations), first and last loss,
model FLOP/s and MFU. FLOP count (as bench/peer.py; useful work over real tokens, attention scores left out; N = matmul
parameters: all but the input embedding, the tied LM head counts): full 6N per token, LoRA 4N (no weight gradients of
the frozen weights; adapters left out), DPO with LoRA 6N over chosen+rejected tokens (adds the reference forward).
MFU = model FLOP/s / the bf16 `torch.mm` peak of 8192^3 measured at the start of the same run (fp32 1024^3 on a CPU).

Prints one line per variant and writes `gpu_bench.json` to `--out` (default `$OUT`, else the current folder).
"""
import argparse, gc, importlib.util, json, math, os, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = {"sft_lora": ("sft", "lora"), "sft_full": ("sft", "full"), "dpo_lora": ("dpo", "lora")}
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, head_dim=64,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768,
                 rope_theta=1000000.0, rms_norm_eps=1e-6)
QWEN2_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  intermediate_size=176, vocab_size=2048, tie_word_embeddings=True, max_position_embeddings=4096,
                  rope_theta=1000000.0, rms_norm_eps=1e-6)
# (attention, packed, liger)
VARIANTS = [("hf", False, False), ("hf", True, False), ("sdpa", False, False), ("sdpa", True, False), ("fa2", False, False),
            ("fa2", True, False), ("sdpa", True, True), ("fa2", True, True)]


def features(device: str) -> dict[str, str | None]:
    "Why fa2 / liger cannot run here (None: they can)"
    why = {}
    if device != "cuda": why["fa2"] = why["liger"] = "needs a CUDA GPU"
    else:
        from transformers.utils import is_flash_attn_2_available
        why["fa2"] = None if is_flash_attn_2_available() else "flash-attn is not installed (or does not fit this GPU/torch)"
        if importlib.util.find_spec("liger_kernel") is None: why["liger"] = "liger-kernel is not installed"
        else:
            try:
                from liger_kernel.transformers import apply_liger_kernel_to_qwen2  # noqa: F401
                why["liger"] = None
            except Exception as e: why["liger"] = f"liger_kernel does not import: {type(e).__name__}: {str(e)[:150]}"
    return why


def matmul_peak(device: str) -> tuple[float, str]:
    "Achieved FLOP/s of one large torch.mm in the training dtype"
    import torch
    if device == "cuda":
        n, dt = 8192, torch.bfloat16
        a, b = torch.randn(n, n, device="cuda", dtype=dt), torch.randn(n, n, device="cuda", dtype=dt)
        for _ in range(5): torch.mm(a, b)
        torch.cuda.synchronize()
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(20): torch.mm(a, b)
            torch.cuda.synchronize()
            best = max(best, 2 * n ** 3 * 20 / (time.perf_counter() - t))
        del a, b; torch.cuda.empty_cache()
        return best, f"bf16 mm {n}^3"
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n); torch.mm(a, b)
    it, t = 0, time.perf_counter()
    while time.perf_counter() - t < 1.0: torch.mm(a, b); it += 1
    return 2 * n ** 3 * it / (time.perf_counter() - t), f"fp32 mm {n}^3"


def model_dir(tiny: bool) -> Path:
    "A folder with the Qwen2 config and llmfactory's tiny Qwen2 tokenizer (no weights: load_model builds them)"
    from transformers import Qwen2Config
    from llmfactory.tiny import build_tiny_tokenizer
    d = Path(tempfile.mkdtemp(prefix="gbench-qwen2-"))
    tok = build_tiny_tokenizer("qwen2", 1000)
    tok.save_pretrained(d)
    Qwen2Config(**(QWEN2_TINY if tiny else QWEN2_05B), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                bos_token_id=tok.bos_token_id).save_pretrained(d)
    return d


def lognormal_len(rng, median: float, lo: int, hi: int, sigma: float = 0.7) -> int:
    return int(min(hi, max(lo, round(rng.lognormvariate(math.log(median), sigma)))))


def synth_rows(stage: str, n: int, vocab: int, cutoff: int, scale: float, seed: int = 0) -> list[dict]:
    "Rows of the data contract of `stage` (sft: input_ids/attention_mask/labels; dpo: chosen_*/rejected_*) from random ids"
    import random
    rng = random.Random(seed)
    ids = lambda k: [rng.randrange(10, vocab) for _ in range(k)]
    rows = []
    for _ in range(n):
        if stage == "sft":
            L = lognormal_len(rng, 384 * scale, 8, cutoff)
            k = int(L * rng.uniform(0.2, 0.6))
            x = ids(L)
            rows.append({"input_ids": x, "attention_mask": [1] * L, "labels": [-100] * k + x[k:]})
        else:
            p = ids(lognormal_len(rng, 192 * scale, 4, cutoff // 2))
            row = {}
            for side in ("chosen", "rejected"):
                r = ids(lognormal_len(rng, 256 * scale, 4, cutoff - len(p)))
                row.update({f"{side}_input_ids": p + r, f"{side}_attention_mask": [1] * (len(p) + len(r)),
                            f"{side}_labels": [-100] * len(p) + r})
            rows.append(row)
    return rows


class CountingCollator:
    "Wraps a collator: per batch (in the order they are made, which is the order they are trained) real and computed tokens"
    def __init__(self, collator, stage: str, packed: bool):
        self.collator, self.stage, self.packed, self.stats = collator, stage, packed, []

    def __call__(self, rows):
        out = self.collator(rows)
        if self.stage == "sft": real = sum(len(r["input_ids"]) for r in rows)
        else: real = sum(len(r["chosen_input_ids"]) + len(r["rejected_input_ids"]) for r in rows)
        # dpo packed: DPOTrainer runs only the real tokens of the padded batch, as one row
        computed = real if (self.stage == "dpo" and self.packed) else out["input_ids"].numel()
        self.stats.append((len(rows), real, computed))
        return out


def make_timer(warmup: int, deadline: float, sync):
    from transformers import TrainerCallback
    class Timer(TrainerCallback):
        "Times the steps after `warmup`; stops training at `deadline` (time.perf_counter) once 2 steps are timed"
        def __init__(self): self.t0 = self.t1 = self.s0 = self.s1 = None; self.losses = []
        def on_step_end(self, args, state, control, **kw):
            if state.global_step < warmup: return
            sync(); now = time.perf_counter()
            if state.global_step == warmup: self.t0, self.s0 = now, state.global_step
            else: self.t1, self.s1 = now, state.global_step
            if self.s1 is not None and self.s1 - self.s0 >= 2 and now > deadline: control.should_training_stop = True
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs: self.losses.append(float(logs["loss"]))
    return Timer()


def run_variant(name: str, attn: str, packed: bool, liger: bool, a, mdir: Path, deadline: float, nparams_cache: dict) -> dict:
    import torch
    from llmfactory.hparams import get_train_args
    from llmfactory.model import load_model, load_tokenizer, use_packed_sdpa
    from llmfactory.collators import get_collator
    from llmfactory.callbacks import StageTrainer
    from llmfactory.sft import CausalLMTrainer
    stage, ft = RUNS[name]
    cuda = a.device == "cuda"
    steps = a.warmup + a.steps
    batch = a.batch
    out = tempfile.mkdtemp(prefix=f"gbench-{name}-")
    cfg = dict(stage=stage, model_name_or_path=str(mdir), dataset="synthetic", finetuning_type=ft, lora_target="all", lora_rank=8,
               flash_attn="sdpa" if attn == "hf" else attn, enable_liger_kernel=liger, train_from_scratch=True, disable_gradient_checkpointing=a.no_gc,
               output_dir=out, per_device_train_batch_size=batch if stage == "sft" else batch // 2, max_steps=steps, learning_rate=1e-5 if ft == "full" else 1e-4,
               logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=0, pref_beta=0.1, pref_loss="sigmoid",
               dataloader_num_workers=0, cutoff_len=a.cutoff)
    if cuda: cfg["bf16"] = True
    else: cfg["use_cpu"] = True
    args = get_train_args(cfg)
    m, t, f = args.model, args.training, args.finetuning
    tok = load_tokenizer(m)
    if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    mem0 = torch.cuda.memory_allocated() / 2**30 if cuda else None  # left over from earlier variants (should be ~0)
    t_load = time.perf_counter()
    torch.manual_seed(0)  # the same random weights (and LoRA init) in every variant: their first losses compare
    with torch.device("cuda" if cuda else "cpu"):  # random weights made where they train
        model = load_model(tok, m, f, is_trainable=True, gradient_checkpointing=t.gradient_checkpointing or None)
    t_load = time.perf_counter() - t_load
    if attn == "sdpa" and packed and stage == "sft": use_packed_sdpa(model)  # as run_sft does for padding-free rows
    t.gradient_checkpointing, t.remove_unused_columns = False, False
    gc_on = bool(getattr(model, "is_gradient_checkpointing", False) or getattr(getattr(model, "base_model", None), "is_gradient_checkpointing", False))
    if "n" not in nparams_cache:
        base = [(n_, p) for n_, p in model.named_parameters() if "lora_" not in n_]
        total = sum(p.numel() for _, p in base)
        emb = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        # matmul parameters: the input embedding is a lookup; the LM head (tied: the same tensor) is a matmul
        nparams_cache["n"] = total - emb.numel() + (head.numel() if head is emb else 0)
    N = nparams_cache["n"]
    vocab = model.get_input_embeddings().weight.shape[0]
    rows = synth_rows(stage, steps * t.per_device_train_batch_size, vocab, a.cutoff, a.length_scale)
    coll = CountingCollator(get_collator(tok, stage=stage, padding_free=packed and stage == "sft"), stage, packed)
    timer = make_timer(a.warmup, deadline, torch.cuda.synchronize if cuda else (lambda: None))
    if stage == "sft":
        trainer_cls = StageTrainer if attn == "hf" else CausalLMTrainer  # hf: transformers' loss over all logits
        kw = {} if attn == "hf" else dict(label_logits_only=not liger)
        trainer = trainer_cls(model=model, args=t, data_collator=coll, train_dataset=rows, processing_class=tok, callbacks=[timer], **kw)
    else:
        from llmfactory.dpo import DPOTrainer
        t.prediction_loss_only = True
        trainer = DPOTrainer(model=model, args=t, finetuning_args=f, ref_model=None, padding_free=packed, data_collator=coll,
                             train_dataset=rows, processing_class=tok, callbacks=[timer])
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)  # no log dict per step on stdout
    trainer.train()
    if timer.t1 is None: raise RuntimeError(f"fewer than {a.warmup + 1} steps ran")
    s0, s1 = timer.s0, timer.s1
    timed = coll.stats[s0:s1]  # batch i is trained at step i+1
    secs = timer.t1 - timer.t0
    samples, real, computed = (sum(x[i] for x in timed) for i in range(3))
    k = 6 if (ft == "full" or stage == "dpo") else 4
    flops = k * N * real / secs
    res = dict(run=name, attn=attn, packed=packed, liger=liger, steps=s1 - s0, seconds=secs, samples_per_s=samples / secs,
               real_tokens_per_s=real / secs, padding_share=1 - real / computed, real_tokens_per_step=real / (s1 - s0),
               peak_mem_gb=(torch.cuda.max_memory_allocated() / 2**30) if cuda else None, flop_per_token=f"{k}N",
               model_flops=flops, first_loss=timer.losses[0] if timer.losses else None, last_loss=timer.losses[-1] if timer.losses else None,
               load_s=t_load, gradient_checkpointing=gc_on, mem_start_gb=mem0)
    del trainer, model, coll, rows
    gc.collect()
    if cuda: torch.cuda.empty_cache()
    return res


def fmt(v, f="{:.3g}"): return "NA" if v is None else f.format(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="a tiny Qwen2 (hidden 64, 2 layers, vocab 2048) with short rows: checks the code path")
    p.add_argument("--runs", default="sft_lora,sft_full,dpo_lora")
    p.add_argument("--variants", default="all", help="comma-separated attn/batching[/liger], e.g. sdpa/padded,fa2/packed/liger; default all")
    p.add_argument("--budget", type=float, default=420, help="seconds for all variants together (each gets a share; default 7 minutes)")
    p.add_argument("--steps", type=int, default=30, help="most timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch", type=int, default=16, help="rows per batch (DPO: pairs, half this)")
    p.add_argument("--cutoff", type=int, default=2048, help="longest row")
    p.add_argument("--no-gc", action="store_true", help="gradient checkpointing off (llmfactory turns it on with CUDA)")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    a = p.parse_args(argv)
    import warnings; warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never wait on the hub
    import torch, transformers
    transformers.logging.set_verbosity_error()
    if a.device == "cuda" and not torch.cuda.is_available(): print("SKIP all: no CUDA device (use --device cpu --tiny to check the code path)"); return 0
    if a.tiny: a.cutoff, a.steps, a.warmup, a.batch = min(a.cutoff, 256), min(a.steps, 3), min(a.warmup, 1), min(a.batch, 4)
    a.length_scale = 1 / 6 if a.tiny else 1.0
    t_start = time.perf_counter()
    from importlib.metadata import version, PackageNotFoundError
    def ver(pkg):
        try: return version(pkg)
        except PackageNotFoundError: return "-"
    dev = torch.cuda.get_device_name(0) if a.device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"device: {dev} | torch {torch.__version__} cuda {torch.version.cuda} | " +
          " ".join(f"{p} {ver(p)}" for p in ("transformers", "peft", "trl", "accelerate", "flash-attn", "liger-kernel")), flush=True)
    why = features(a.device)
    print(f"flash-attn 2: {'yes' if why['fa2'] is None else 'no (' + why['fa2'] + ')'} | liger-kernel: {'yes' if why['liger'] is None else 'no (' + why['liger'] + ')'}", flush=True)
    peak, peak_name = matmul_peak(a.device)
    print(f"peak: {peak / 1e12:.3g} TFLOP/s ({peak_name}, measured)", flush=True)
    mdir = model_dir(a.tiny)
    print(f"model: Qwen2 {'tiny' if a.tiny else '0.5B shapes'}, random weights, {'bf16' if a.device == 'cuda' else 'fp32'}; batch {a.batch} rows "
          f"(dpo {a.batch // 2} pairs), cutoff {a.cutoff}; {a.warmup} warm-up + up to {a.steps} timed steps; budget {a.budget:.0f}s", flush=True)
    wanted = None if a.variants == "all" else {v.strip() for v in a.variants.split(",")}
    label = lambda attn, packed, liger: f"{attn}/{'packed' if packed else 'padded'}{'/liger' if liger else ''}"
    plan = []
    for liger_pass in (False, True):  # Liger patches the Qwen2 classes for good: its variants last
        for name in a.runs.split(","):
            for attn, packed, liger in VARIANTS:
                if liger == liger_pass and (wanted is None or label(attn, packed, liger) in wanted): plan.append((name, attn, packed, liger))
    results, nparams = [], {}
    t_budget0 = time.perf_counter()
    for i, (name, attn, packed, liger) in enumerate(plan):
        tag = f"{name:9s} {label(attn, packed, liger):18s}"
        reason = (why["fa2"] if attn == "fa2" else None) or (why["liger"] if liger else None)
        if reason:
            print(f"SKIP {tag} {reason}", flush=True); results.append(dict(run=name, attn=attn, packed=packed, liger=liger, skipped=reason)); continue
        left = a.budget - (time.perf_counter() - t_budget0)
        if left < 8:
            print(f"SKIP {tag} time budget spent (--budget {a.budget:.0f}s)", flush=True)
            results.append(dict(run=name, attn=attn, packed=packed, liger=liger, skipped="time budget spent")); continue
        runnable = sum(1 for (_, at, _, lg) in plan[i:] if not ((why["fa2"] if at == "fa2" else None) or (why["liger"] if lg else None)))
        deadline = time.perf_counter() + max(left / max(runnable, 1), 5.0)
        try:
            r = run_variant(name, attn, packed, liger, a, mdir, deadline, nparams)
        except Exception as e:
            traceback.print_exc()
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            print(f"FAIL {tag} {msg}", flush=True)
            results.append(dict(run=name, attn=attn, packed=packed, liger=liger, failed=msg))
            if a.device == "cuda": gc.collect(); torch.cuda.empty_cache()
            continue
        r["mfu"] = r["model_flops"] / peak
        results.append(r)
        print(f"OK   {tag} samples/s={r['samples_per_s']:8.2f} real_tok/s={r['real_tokens_per_s']:9.0f} pad={r['padding_share']:.2f} "
              f"peak_mem_GB={fmt(r['peak_mem_gb'], '{:.1f}')} TFLOP/s={r['model_flops'] / 1e12:.3g} ({r['flop_per_token']}) MFU={r['mfu']:.3f} "
              f"steps={r['steps']} loss={fmt(r['first_loss'], '{:.3f}')}->{fmt(r['last_loss'], '{:.3f}')} load_s={r['load_s']:.1f} "
              f"gc={'on' if r['gradient_checkpointing'] else 'off'}" + (f" mem_at_start_GB={r['mem_start_gb']:.2f}" if (r['mem_start_gb'] or 0) > 0.05 else ""), flush=True)
    # the first step trains the same rows in every variant of a run: its loss should agree (bf16: within ~1%)
    for name in a.runs.split(","):
        done = [r for r in results if r["run"] == name and r.get("first_loss") is not None]
        if len(done) > 1:
            ref = done[0]
            diffs = ", ".join(f"{label(r['attn'], r['packed'], r['liger'])} {(r['first_loss'] - ref['first_loss']) / ref['first_loss']:+.2%}" for r in done[1:])
            print(f"first-loss parity {name} vs {label(ref['attn'], ref['packed'], ref['liger'])} ({ref['first_loss']:.4f}): {diffs}", flush=True)
    print(f"N (matmul parameters) = {nparams.get('n', 0):,}; total {time.perf_counter() - t_start:.0f}s", flush=True)
    outp = Path(a.out); outp.mkdir(parents=True, exist_ok=True)
    (outp / "gpu_bench.json").write_text(json.dumps(dict(device=dev, peak_flops=peak, peak=peak_name, n_params=nparams.get("n"),
                                                         results=results), indent=1))
    print(f"wrote {outp / 'gpu_bench.json'}")
    return 1 if any("failed" in r for r in results) else 0


if __name__ == "__main__": sys.exit(main())
