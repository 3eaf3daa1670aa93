"""PPO in two CPU processes (DDP over gloo), launched as `llmfactory train` launches it with FORCE_TORCHRUN=1.

Each rank runs the CLI's own entry point (`llmfactory.tuner.train_main`) with one extra callback that saves
its value head when training ends; the test then checks that the run completed, that it ran in two processes,
and that both ranks end with the same value head (and that it moved from its zero start). The reward comes from a
small HTTP server in the test (`reward_model_type: api`), so both ranks score against the same rule.
"""
import http.server, json, os, re, subprocess, sys, threading, time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

WORKER = '''
import os, sys, torch
from transformers import TrainerCallback
import llmfactory.tuner as tuner

class SaveHead(TrainerCallback):
    "Each rank writes its value head and the world size when training ends"
    def on_train_end(self, args, state, control, model=None, **kw):
        head = {k: v.detach().cpu().clone() for k, v in model.v_head.state_dict().items()}
        torch.save({"head": head, "world_size": args.world_size, "steps": state.global_step},
                   os.path.join(os.environ["HEAD_DIR"], f"head_rank{args.process_index}.pt"))

train = tuner.train
tuner.train = lambda config=None, overrides=None, callbacks=None: train(config, overrides, [*(callbacks or []), SaveHead()])
raise SystemExit(tuner.train_main(sys.argv[1:]))
'''


class Judge(http.server.BaseHTTPRequestHandler):
    "Scores a reply by how close its last number is to the sum asked for"
    def do_POST(self):
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"]
        scores = []
        for t in texts:
            q = re.search(r"What is (\d+) \+ (\d+)\?", t)
            a = re.search(r"(\d+)\D*$", t.split("?", 1)[-1]) if q else None
            scores.append(1 / (1 + abs(int(a.group(1)) - int(q.group(1)) - int(q.group(2)))) if a else 0.0)
        body = json.dumps({"scores": scores}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)

    def log_message(self, *a): pass


def test_ddp_ppo_two_processes(tmp_path):
    from llmfactory.tuner import torchrun_command
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out, heads = tmp_path / "ppo", tmp_path / "heads"
    heads.mkdir()
    (tmp_path / "worker.py").write_text(WORKER)
    cfg = dict(model_name_or_path="tiny-llama", stage="ppo", do_train=True, finetuning_type="lora", dataset="math_train", dataset_dir=str(ROOT / "data"),
               template="default", cutoff_len=64, max_samples=32, reward_model=f"http://127.0.0.1:{server.server_address[1]}/score",
               reward_model_type="api", output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=3, logging_steps=1,
               max_new_tokens=4, ppo_epochs=2, save_strategy="no", report_to="none", disable_tqdm=True, seed=0)  # no use_cpu: on a machine without a GPU, the torchrun workers must still form one gloo run
    (tmp_path / "ppo.yaml").write_text(yaml.safe_dump(cfg))
    argv = [str(tmp_path / "ppo.yaml")]
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "HEAD_DIR": str(heads), "OMP_NUM_THREADS": "1",
           "MASTER_PORT": str(29600 + os.getpid() % 300), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = torchrun_command(argv, env)  # what `llmfactory train` runs with FORCE_TORCHRUN=1
    assert cmd is not None and "--nproc_per_node=2" in cmd
    i = cmd.index("llmfactory.tuner")
    cmd = cmd[:i - 1] + [str(tmp_path / "worker.py")] + cmd[i + 1:]  # the same entry point, plus the callback
    t0 = time.time()
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    server.shutdown()
    print(f"{len(cmd)} args, rc {res.returncode}, {time.time() - t0:.0f}s"); print(res.stdout[-2000:])
    assert res.returncode == 0, res.stderr[-4000:]
    ranks = [torch.load(heads / f"head_rank{r}.pt") for r in (0, 1)]
    for r in ranks: assert (r["world_size"], r["steps"]) == (2, 3), r  # two processes, three steps each
    for k in ranks[0]["head"]:
        assert torch.equal(ranks[0]["head"][k], ranks[1]["head"][k]), f"{k} differs between the ranks"
    w = ranks[0]["head"]["summary.weight"]
    assert w.abs().sum() > 0  # the head trained (it starts at zero)
    print("value head equal on both ranks; |w|_1 =", float(w.abs().sum()))
    assert (out / "value_head.safetensors").exists() and (out / "adapter_model.safetensors").exists()
    logs = [json.loads(l) for l in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert any("reward" in l for l in logs)
