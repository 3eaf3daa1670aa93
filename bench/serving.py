"""Serving side by side with LLaMA-Factory 0.9.5: requests/s, tokens/s, latency and peak memory of both OpenAI-compatible APIs.

    python bench/serving.py [--clients 1,8,32] [--max-tokens 32] [--rounds 1] [--sides lf,llmf] [--quick]
    python bench/serving.py --generate          # also: ChatModel tokens/s in-process (batch 1, 8, 32, streaming)

Both servers serve the same model folder (the peer's tiny Llama, `$PEER_DIR/models/tiny`, built by
`../shared/peer/make_tiny.py` as `bench/peer.py` does; `--model` for another) with the `default` template, fp32, on the
CPU, each started as its own subprocess with its own CLI:
- `lf`: `llamafactory-cli api CONFIG.yaml` from the peer venv (`$PEER_DIR/venv`, built by `../shared/peer/run_peer.sh`),
  `API_PORT` / `API_HOST`, its default `MAX_CONCURRENT=1` (one `generate` at a time: LLaMA-Factory's HF engine has no batching);
- `llmf`: `python -m llmfactory.cli api --port P key=value ...` from this checkout, default settings (the engine batches
  requests that arrive together: `MAX_BATCH` 32, `BATCH_WAIT_MS` 5).

For each number of concurrent clients (httpx async clients, each sending its next request when the last is answered),
`--requests-per-client` requests (at least 8 in all) of `max_tokens = --max-tokens`, `temperature 0` (greedy), first
non-streamed then streamed. Printed, one line per figure: requests/s (requests / wall time), generated tokens/s
(non-streamed: the responses' `usage.completion_tokens`; streamed: the streamed text re-tokenized with the model's
tokenizer, the same count for both sides), latency p50/p95 (streamed: also the time to the first text piece), and the
server's peak RSS (VmHWM of its processes) at the end. Each figure as `lf=<x> llmf=<y> ratio=<llmf/lf>`.

Checks (printed as PASS/FAIL lines, exit code 1 on a failure): every llmfactory greedy reply sent with 32 clients (batched)
equals the reply to the same prompt sent alone (unbatched); streamed text equals the non-streamed reply. For information,
how many of LLaMA-Factory's replies equal llmfactory's (same model, same template, greedy: they should).

Both servers run with the same `OMP_NUM_THREADS` (`--threads`, default 1: with more intra-op threads than free cores, torch's
OpenMP threads spin waiting for each other, and one generation measured ten times slower on this shared 2-core machine).
Timings on a shared machine swing: the load average is printed; `--rounds 2` alternates the sides and keeps each side's
best figure.
"""
import argparse, asyncio, json, os, socket, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = Path(os.environ.get("PEER_DIR", Path.home() / ".cache" / "llmf-peer"))
PROMPTS = ["Hi", "Tell me about the weather today", "Write a short poem about the sea and the wind",
           "Explain in simple words how a neural network learns from examples and why it needs so much data",
           "What is 2 + 2?", "List three fruits", "Summarize the plot of a story about a dragon who is afraid of fire",
           "Translate 'good morning' into French"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
           PYTHONWARNINGS="ignore", DISABLE_VERSION_CHECK="1")


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(n)]


def load_str() -> str: return ",".join(f"{x:.2f}" for x in os.getloadavg())


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))] if xs else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    "The largest peak RSS (VmHWM) among the process `pid` and its descendants, in MB"
    import psutil
    try: procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess: return float("nan")
    best = 0
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"): best = max(best, int(line.split()[1]))
        except OSError: pass
    return best / 1024


# -- the two servers -------------------------------------------------------------------------------------------------
def start(side: str, a, port: int) -> subprocess.Popen:
    env = dict(ENV)
    if a.threads: env["OMP_NUM_THREADS"] = str(a.threads)
    log = open(Path(a.workdir) / f"{side}_server.log", "w")
    if side == "lf":
        cfg = Path(a.workdir) / "lf_api.yaml"
        cfg.write_text(json.dumps(dict(model_name_or_path=a.model, template=a.template, infer_backend="huggingface",
                                       infer_dtype="float32", temperature=0, max_new_tokens=a.max_tokens, trust_remote_code=False)))
        env.update(API_PORT=str(port), API_HOST="127.0.0.1", HF_HOME=str(PEER_DIR / ".hf_home"))
        cmd = [str(PEER_DIR / "venv" / "bin" / "llamafactory-cli"), "api", str(cfg)]
    else:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "llmfactory.cli", "api", "--port", str(port), f"model_name_or_path={a.model}", f"template={a.template}",
               "infer_dtype=float32", "temperature=0", f"max_new_tokens={a.max_tokens}"]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=a.workdir)


def wait_up(proc: subprocess.Popen, url: str, side: str, a) -> float:
    import httpx
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the {side} server exited with {proc.returncode}:\n" + (Path(a.workdir) / f"{side}_server.log").read_text()[-3000:])
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200: return time.perf_counter() - t0
        except httpx.TransportError: pass
        if time.perf_counter() - t0 > 300: raise RuntimeError(f"the {side} server did not answer within 300s")
        time.sleep(0.3)


def stop(proc: subprocess.Popen):
    proc.terminate()
    try: proc.wait(timeout=20)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()


# -- clients ----------------------------------------------------------------------------------------------------------
async def one_request(client, conv, max_tokens: int, stream: bool) -> tuple[str, int|None, float, float]:
    "`(text, completion tokens from usage or None, latency, time to first piece)` of one chat completion"
    body = {"model": "bench", "messages": conv, "max_tokens": max_tokens, "temperature": 0, "stream": stream}
    t = time.perf_counter()
    if not stream:
        r = await client.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        j = r.json()
        lat = time.perf_counter() - t
        return j["choices"][0]["message"]["content"] or "", j["usage"]["completion_tokens"], lat, lat
    text, first = [], None
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]": continue
            ch = json.loads(line[6:]).get("choices") or []
            piece = (ch[0].get("delta") or {}).get("content") if ch else None
            if piece:
                if first is None: first = time.perf_counter() - t
                text.append(piece)
    lat = time.perf_counter() - t
    return "".join(text), None, lat, first if first is not None else lat


async def load_run(url: str, clients: int, n: int, max_tokens: int, stream: bool) -> dict:
    "`n` requests from `clients` concurrent clients: wall time, latencies, replies by request index"
    import httpx
    convs, replies, lat, ttft, toks = conversations(n), {}, [], [], []
    queue = list(range(n))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        async def worker():
            while queue:
                i = queue.pop(0)
                text, ntok, l, f = await one_request(client, convs[i], max_tokens, stream)
                replies[i] = text; lat.append(l); ttft.append(f); toks.append(ntok)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return dict(wall=wall, lat=lat, ttft=ttft, toks=toks, replies=replies, n=n)


def measure(side: str, a, tokenizer) -> dict:
    "Start `side`'s server, run every (clients, stream) level, stop it: {(clients, stream): figures}, peak RSS, start-up time"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(side, a, port)
    out = {}
    try:
        up = wait_up(proc, url, side, a)
        print(f"{side}: server up in {up:.1f}s (load {load_str()})", flush=True)
        asyncio.run(load_run(url, 2, 4, a.max_tokens, False))  # warm-up
        for c in a.clients:
            for stream in (False, True):
                n = max(8, c * a.requests_per_client)
                r = asyncio.run(load_run(url, c, n, a.max_tokens, stream))
                ntok = sum(r["toks"]) if not stream else sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in r["replies"].values())
                fig = dict(rps=n / r["wall"], tps=ntok / r["wall"], p50=pct(r["lat"], .5), p95=pct(r["lat"], .95),
                           ttft50=pct(r["ttft"], .5), replies=r["replies"], tokens=ntok, n=n)
                out[(c, stream)] = fig
                print(f"  {side} clients={c:<3d} {'stream' if stream else 'plain ':6s} requests={n:<4d} requests/s={fig['rps']:7.2f} "
                      f"tokens/s={fig['tps']:8.1f} p50={fig['p50']:.3f}s p95={fig['p95']:.3f}s ttft_p50={fig['ttft50']:.3f}s", flush=True)
        out["rss"] = peak_rss_mb(proc.pid)
        out["up"] = up
    finally: stop(proc)
    return out


def better(x: dict|None, y: dict) -> dict:
    "Per figure, the better of two rounds (higher rates, lower latencies)"
    if x is None: return y
    z = dict(y)
    for k in x:
        if isinstance(k, tuple):
            z[k] = dict(y[k], **{f: (max if f in ("rps", "tps") else min)(x[k][f], y[k][f]) for f in ("rps", "tps", "p50", "p95", "ttft50")})
    z["rss"], z["up"] = min(x["rss"], y["rss"]), min(x["up"], y["up"])
    return z


# -- in-process generation (optional) ---------------------------------------------------------------------------------
def bench_generate(a) -> None:
    "ChatModel tokens/s at batch 1, 8, 32 and streamed, every reply running to max_tokens (the end token masked until then)"
    import torch
    from llmfactory.chat import ChatModel
    cm = ChatModel(dict(model_name_or_path=a.model, template=a.template, do_sample=False, max_new_tokens=a.max_tokens, infer_dtype="float32"))
    eng, real = cm.engine, cm.engine._generate
    eng._generate = lambda **kw: real(**dict(kw, min_new_tokens=kw.get("max_new_tokens")))
    print(f"generate: torch threads {torch.get_num_threads()}", flush=True)
    for b in (1, 8, 32):
        convs = conversations(b)
        call = lambda: sum(r[0].response_length for r in cm.batch_chat(convs))
        call()  # warm-up
        runs = []
        for _ in range(2):
            t0 = time.perf_counter(); n = call(); runs.append((time.perf_counter() - t0, n))
        secs, n = min(runs)
        print(f"generate batch={b:<3d} tokens/s={n / secs:9.1f} seconds/call={secs:.3f} generated={n}", flush=True)
    stats, t = {}, time.perf_counter()
    first = None
    for _ in cm.stream_chat(conversations(1)[0], stats=stats):
        if first is None: first = time.perf_counter() - t
    secs = time.perf_counter() - t
    print(f"stream   batch=1   tokens/s={stats['response_length'] / secs:9.1f} time_to_first_piece_s={first:.3f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(PEER_DIR / "models" / "tiny"), help="model folder both servers load (default: the peer's tiny Llama)")
    p.add_argument("--template", default="default")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request")
    p.add_argument("--clients", default="1,8,32", help="concurrent clients")
    p.add_argument("--requests-per-client", type=int, default=2, help="requests per client at each level (at least 8 in all)")
    p.add_argument("--rounds", type=int, default=1, help="alternate the sides this many times, keeping each side's best figures")
    p.add_argument("--sides", default="lf,llmf")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both servers (default 1; 0: torch's own). On a loaded "
                   "machine torch's OpenMP threads spin waiting for each other: 2 threads on 2 busy cores measured 10x slower than 1")
    p.add_argument("--generate", action="store_true", help="also measure ChatModel generation in this process")
    p.add_argument("--quick", action="store_true", help="clients 1,32 and max_tokens 16")
    a = p.parse_args(argv)
    if a.quick: a.clients, a.max_tokens = "1,32", min(a.max_tokens, 16)
    a.clients = [int(x) for x in a.clients.split(",")]
    sides = a.sides.split(",")
    warnings.filterwarnings("ignore")
    if "lf" in sides and not (PEER_DIR / "venv" / "bin" / "llamafactory-cli").exists():
        print(f"no LLaMA-Factory venv at {PEER_DIR}/venv: run ../shared/peer/run_peer.sh once to build it; llmfactory side only")
        sides = [s for s in sides if s != "lf"]
    if not Path(a.model).exists():
        sys.path.insert(0, str(ROOT))
        if a.model == str(PEER_DIR / "models" / "tiny"): sys.exit(f"no model at {a.model}: run bench/peer.py or ../shared/peer/run_peer.sh once to build it")
        from llmfactory.tiny import resolve_model_path
        a.model = str(resolve_model_path(a.model))
    a.workdir = tempfile.mkdtemp(prefix="llmf-serving-")
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    print(f"machine: {os.cpu_count()} cpus load={load_str()} | model {a.model} | max_tokens {a.max_tokens} | logs {a.workdir}", flush=True)
    if a.generate: bench_generate(a)
    res = {s: None for s in sides}
    for _ in range(a.rounds):
        for s in sides: res[s] = better(res[s], measure(s, a, tokenizer))

    print(f"\n{'figure':38s} {'lf':>10s} {'llmf':>10s} {'ratio':>7s}   (ratio = llmf/lf; latencies: lower is better)")
    def line(name, f, key, fmt="{:.2f}"):
        v = {s: (res[s][key][f] if isinstance(key, tuple) else res[s][key]) for s in sides}
        lf, ll = v.get("lf"), v.get("llmf")
        ratio = f"{ll / lf:7.2f}" if lf and ll else "     NA"
        print(f"{name:38s} {fmt.format(lf) if lf is not None else 'NA':>10s} {fmt.format(ll) if ll is not None else 'NA':>10s} {ratio}")
    for c in a.clients:
        for stream in (False, True):
            k, tag = (c, stream), f"{c} clients {'stream' if stream else 'plain'}"
            line(f"{tag} requests/s", "rps", k); line(f"{tag} tokens/s", "tps", k, "{:.1f}")
            line(f"{tag} latency p50 s", "p50", k, "{:.3f}"); line(f"{tag} latency p95 s", "p95", k, "{:.3f}")
            if stream: line(f"{tag} first piece p50 s", "ttft50", k, "{:.3f}")
    line("server peak RSS MB", None, "rss", "{:.0f}"); line("server start-up s", None, "up", "{:.1f}")

    ok = True
    if "llmf" in sides:
        r = res["llmf"]
        alone = {i % len(PROMPTS): t for i, t in r[(a.clients[0], False)]["replies"].items()}
        for c in a.clients:
            for stream in (False, True):
                got = r[(c, stream)]["replies"]
                bad = [i for i, t in got.items() if alone.get(i % len(PROMPTS), t) != t]
                what = f"llmf replies with {c} clients ({'streamed' if stream else 'not streamed'}) equal those sent alone"
                print(f"{'PASS' if not bad else 'FAIL'} {what}: {len(got) - len(bad)}/{len(got)}")
                ok &= not bad
        if "lf" in sides:
            lf_alone = {i % len(PROMPTS): t for i, t in res["lf"][(a.clients[0], False)]["replies"].items()}
            same = sum(lf_alone.get(k) == t for k, t in alone.items())
            print(f"info: LLaMA-Factory's greedy replies equal llmfactory's for {same}/{len(alone)} prompts")
    print(f"end load={load_str()}")
    return 0 if ok else 1


if __name__ == "__main__": sys.exit(main())
