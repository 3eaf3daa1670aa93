"""Serving figures on this machine: generation tokens/s of `llmfactory.chat.ChatModel` and requests/s of the API server.

    python bench/serving.py [--model tiny-llama] [--max-new-tokens 32] [--requests 32] [--batches 1,8,32] [--quick]

What is measured, one printed line per figure:
- `generate`: `ChatModel` with the huggingface engine, fp32, greedy, on the CPU (or the GPU when there is one). Prompts are
  short user turns of different lengths rendered with the template. Early stop is disabled: every reply runs to exactly
  `--max-new-tokens` (the engine's one `model.generate` call gets `min_new_tokens = max_new_tokens`), so all rows of a
  batch do the same work. tokens/s counts generated tokens only (the replies' `response_length`, prompts excluded), over
  the best of `--repeat` timed calls after two warm-up calls of the same shape (the first calls are slow, more so
  on a loaded machine: `first_call_s`). Batch 1 goes through `chat`, larger
  batches through `batch_chat` (one left-padded `generate`). `stream` is `stream_chat` at batch 1: time to the first
  text piece and tokens/s over the whole reply.
- `api`: the OpenAI-compatible server (`llmfactory.api.api_main`, uvicorn) started as a subprocess on a free local
  port with the same model settings (so client and server do not share an interpreter), then `--requests`
  non-streaming `/v1/chat/completions` requests with `max_tokens = --max-new-tokens` sent by an httpx async client
  with 1 and 8 requests in flight. Printed: requests/s (requests / wall time of the whole run), mean and p95 latency
  per request (and the slowest), and completion tokens/s from the responses' `usage`. Four warm-up requests first. The server generates
  `MAX_CONCURRENT` requests at a time (its default 1; `--max-concurrent` sets it): more in flight queue at the server.
  Replies can stop early at the end token here (the API has no ignore-eos setting); the usage counts what was produced.

The machine's load average is printed at the start and the end: on a shared machine the figures are noisy, and torch's
intra-op threads wait on each other when the cores are taken (slow first calls, outliers); `--threads 1` is steadier there.
"""
import argparse, asyncio, os, socket, statistics, subprocess, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Hi", "Tell me about the weather today", "Write a short poem about the sea and the wind",
           "Explain in simple words how a neural network learns from examples and why it needs so much data",
           "What is 2 + 2?", "List three fruits", "Summarize the plot of a story about a dragon who is afraid of fire",
           "Translate 'good morning' into French"]


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(n)]


def load_str() -> str: return ",".join(f"{x:.2f}" for x in os.getloadavg())


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(0.95 * len(xs)) - 1))]


def model_settings(a) -> dict:
    s = dict(model_name_or_path=a.model, do_sample=False, max_new_tokens=a.max_new_tokens, infer_dtype=a.dtype)
    if a.template: s["template"] = a.template
    return s


def bench_generate(a) -> None:
    import torch
    from llmfactory.chat import ChatModel
    t0 = time.perf_counter()
    cm = ChatModel(model_settings(a))
    eng = cm.engine
    nparams = sum(p.numel() for p in eng.model.parameters())
    print(f"model: {a.model} {nparams:,} parameters, {eng.model.dtype}, {eng.model.device}, template {eng.template.name}, "
          f"loaded in {time.perf_counter() - t0:.1f}s; torch threads {torch.get_num_threads()}", flush=True)
    generate = eng._generate
    def no_early_stop(**kw):  # every reply runs to max_new_tokens: the end token is masked until then
        kw["min_new_tokens"] = kw.get("max_new_tokens")
        return generate(**kw)
    eng._generate = no_early_stop

    def timed(fn) -> tuple[float, int]:
        t = time.perf_counter(); n = fn(); return time.perf_counter() - t, n

    for b in a.batches:
        convs = conversations(b)
        if b == 1: call = lambda: cm.chat(convs[0])[0].response_length
        else: call = lambda: sum(r[0].response_length for r in cm.batch_chat(convs))
        first, _ = timed(call)  # warm-up
        timed(call)
        runs = [timed(call) for _ in range(a.repeat)]
        secs, toks = min(runs)
        expect = b * a.max_new_tokens
        note = "" if toks == expect else f" (expected {expect}: a stop string cut some replies)"
        print(f"generate batch={b:<3d} tokens/s={toks / secs:9.1f}  seconds/call={secs:.3f}  generated={toks}{note}  "
              f"first_call_s={first:.2f}", flush=True)

    # streaming at batch 1: time to the first text piece, tokens/s over the whole reply
    best = None
    for _ in range(a.repeat + 1):
        stats, t = {}, time.perf_counter()
        it = cm.stream_chat(conversations(1)[0], stats=stats)
        ttft = None
        for _piece in it:
            if ttft is None: ttft = time.perf_counter() - t
        secs = time.perf_counter() - t
        if ttft is None: ttft = secs
        if best is None or secs < best[0]: best = (secs, ttft, stats.get("response_length", 0))
    secs, ttft, n = best
    print(f"stream   batch=1   tokens/s={n / secs:9.1f}  seconds/call={secs:.3f}  generated={n}  time_to_first_piece_s={ttft:.3f}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def start_server(a, port: int) -> subprocess.Popen:
    overrides = [f"{k}={v}" for k, v in model_settings(a).items()]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONWARNINGS="ignore",
               TOKENIZERS_PARALLELISM="false", MAX_CONCURRENT=str(a.max_concurrent))
    if a.threads: env["OMP_NUM_THREADS"] = str(a.threads)
    code = "import sys; from llmfactory.api import api_main; sys.exit(api_main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "--port", str(port), *overrides], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def fire(url: str, n: int, concurrency: int, max_tokens: int) -> tuple[float, list[float], int]:
    "`n` chat completions with `concurrency` in flight: (wall seconds, per-request latencies, completion tokens)"
    import httpx
    sem, lat, toks = asyncio.Semaphore(concurrency), [], [0]
    convs = conversations(n)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency + 2)) as client:
        async def one(i):
            async with sem:
                t = time.perf_counter()
                r = await client.post("/v1/chat/completions", json={"model": "bench", "messages": convs[i], "max_tokens": max_tokens, "temperature": 0})
                r.raise_for_status()
                lat.append(time.perf_counter() - t)
                toks[0] += r.json()["usage"]["completion_tokens"]
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0, lat, toks[0]


def bench_api(a) -> None:
    import httpx
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = start_server(a, port)
    try:
        while True:
            if proc.poll() is not None: raise RuntimeError(f"the API server exited with {proc.returncode}:\n{proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            if time.perf_counter() - t0 > 180: raise RuntimeError("the API server did not answer within 180s")
            time.sleep(0.2)
        print(f"api: server up in {time.perf_counter() - t0:.1f}s on {url} (subprocess, MAX_CONCURRENT={a.max_concurrent})", flush=True)
        asyncio.run(fire(url, 4, 1, a.max_new_tokens))  # warm-up
        for c in a.concurrency:
            wall, lat, toks = asyncio.run(fire(url, a.requests, c, a.max_new_tokens))
            print(f"api      concurrency={c:<2d} requests/s={a.requests / wall:7.2f}  latency_mean_s={statistics.mean(lat):.3f}  "
                  f"latency_p95_s={p95(lat):.3f}  latency_max_s={max(lat):.3f}  completion_tokens/s={toks / wall:8.1f}  requests={a.requests} max_tokens={a.max_new_tokens}", flush=True)
    finally:
        proc.terminate()
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: proc.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny-llama", help="model_name_or_path (default tiny-llama, built locally)")
    p.add_argument("--template", default="default", help="template name ('' = from the tokenizer)")
    p.add_argument("--dtype", default="float32", help="infer_dtype (float32 on a CPU: bf16 is far slower there)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per reply (and max_tokens of API requests)")
    p.add_argument("--batches", default="1,8,32", help="generation batch sizes")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per batch size (the quickest is reported)")
    p.add_argument("--requests", type=int, default=32, help="API requests per concurrency level")
    p.add_argument("--concurrency", default="1,8", help="API requests in flight")
    p.add_argument("--max-concurrent", type=int, default=int(os.environ.get("MAX_CONCURRENT", "1")), help="the server's MAX_CONCURRENT")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the generation part and the server (default: torch's own)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: generate, api")
    p.add_argument("--quick", action="store_true", help="fewer repeats and requests, max_new_tokens 16")
    a = p.parse_args(argv)
    if a.quick: a.repeat, a.requests, a.max_new_tokens = 1, min(a.requests, 16), min(a.max_new_tokens, 16)
    a.batches = [int(x) for x in a.batches.split(",")]
    a.concurrency = [int(x) for x in a.concurrency.split(",")]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import transformers; transformers.logging.set_verbosity_error()
    print(f"machine: {os.cpu_count()} cpus load={load_str()} | python {sys.version.split()[0]}", flush=True)
    if a.threads:
        import torch; torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    skip = set(a.skip.split(","))
    if "generate" not in skip: bench_generate(a)
    if "api" not in skip: bench_api(a)
    print(f"end load={load_str()} total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__": sys.exit(main())
