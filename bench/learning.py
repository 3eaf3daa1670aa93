"""Learning proof: each training stage on the tiny model (CPU, fp32) on a synthetic task, addition of two numbers 0..99.

    python bench/learning.py [--quick] [--check] [--stages pt,sft,rm,dpo,orpo,simpo,kto,ppo,grpo]

Prints one line per stage: the stage's own figure on held-out problems (disjoint from the training ones) before and
after training, and the time taken. With --check it exits with status 1 when a stage misses its target (the full
run's targets, or lower ones with --quick, the shortened version CI runs to catch regressions).

- pt then sft (full tuning, from the untrained model): exact match of greedy answers (target >= 0.9).
- The preference and RL stages start from one policy, "sloppy": sft on demonstrations of a careless annotator who
  writes the sum one too high in half of the rows. It answers with the sum or the sum + 1 about equally often, so it
  prefers the right sum of a held-out pair (chosen: the sum; rejected: the sum + 1, the annotator's slip) about half
  of the time. This is the situation preference tuning is for: the model can produce the good answer and the bad
  one, and the pairs tell it which is which.
- rm (from the sloppy policy with a new score head, as InstructGPT starts it from the sft model): held-out pairwise
  accuracy (target >= 0.9).
- dpo, orpo, simpo, kto (full tuning, pref_beta 0.1; simpo 0.25): held-out preference accuracy, the share of pairs
  whose chosen reply gets the higher log-probability (target >= 0.9); then the held-out exact match of the policy.
- ppo and grpo (reward: number_match, 1 / (1 + |answer - sum|); ppo gets it from a reward server, reward_model_type
  api): the mean number_match reward of answers sampled at temperature 1 on held-out prompts, before and after; ppo
  also prints the mean reward of its training samples, first and last logged. Targets: the held-out reward of both
  rises, and ppo's training reward. Why not a learned reward model for ppo: PPO raises the score of every one tried
  while the true held-out reward falls (reward hacking), though PPO against the served rule raises it (0.584 -> 0.650,
  --base-dir of an 8-epoch sloppy policy, 30 steps, lr 2e-3, ppo_epochs 4, ppo_score_norm). Measured on that policy:
  the rm above (only the slip "one too high" seen; right on 0.36 of held-out (sum, sum - 1) pairs): 0.69 -> 0.46
  (0.69 -> 0.668 with ppo_score_norm, ppo_init_kl_coef 1, ppo_target 1); an rm shown wrong sums off by 1-3 either way
  (held-out pair accuracy 0.55 for sum + 1, 0.68 for sum - 1): 0.584 -> 0.535 (lr 1e-3, ppo_epochs 2: 0.543; KL coef
  1, target 1: 0.544), answers 3 or more too high doubling; an rm shown wrong sums off by 1-10 either way (0.73, 0.80):
  0.584 -> 0.458, answers 3 or more too low tripling.

pt before sft: in this task, pretraining on the problems written as text does not help sft (12 sft epochs after pt:
0.91; from the untrained model: 1.00), so --quick leaves pt out.

Figures measured here (full run, tiny-qwen2, CPU, November 2026) are in the closing note of the stages issue; the
trials that led to this design: from the untrained model, dpo/simpo/kto fit their training pairs but stay at ~0.5
on held-out pairs (one bit per pair is too little to learn addition from); with off-by-one-either-way slips
(`--noise pm1`, two rows in three) the sloppy policy already prefers the right sum (0.75) and dpo does not move it;
without the SFT term (`--pref-ftx 0`) dpo and simpo reach 0.985 preference accuracy while the likelihood of both
replies falls and their greedy answers collapse (exact match 0.475 -> 0.01), hence pref_ftx 1.0 for them.
"""
import argparse, random, tempfile, time, warnings
from dataclasses import replace
from pathlib import Path
warnings.filterwarnings("ignore")
import torch
from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, set_seed

from llmfactory.data import IGNORE_INDEX, get_collator, get_dataset
from llmfactory.demo import arithmetic_split, preference_rows, unpaired_rows, write_dataset
from llmfactory.stage import get_ref_model
from llmfactory.dpo import DPOTrainer, preference_accuracy
from llmfactory.grpo import GRPOTrainer, get_reward_funcs, grpo_config, number_match
from llmfactory.hparams import get_train_args
from llmfactory.kto import KTOTrainer
from llmfactory.model import load_model, load_tokenizer
from llmfactory.ppo import PPOTrainer, load_ppo_reward_model
from llmfactory.rm import RewardTrainer, load_reward_model, pairwise_accuracy
from llmfactory.callbacks import StageTrainer
from llmfactory.template_auto import get_template

p = argparse.ArgumentParser(); p.add_argument("--quick", action="store_true", help="the shortened version (CI)")
p.add_argument("--check", action="store_true", help="exit with status 1 when a stage misses its target")
p.add_argument("--model", default="tiny-qwen2")  # its tokenizer splits numbers into digits, which makes addition learnable
p.add_argument("--stages", default=None, help="comma-separated (default: all; --quick leaves out pt)")
p.add_argument("--pref-epochs", type=int, default=None, help="epochs of rm/dpo/orpo/simpo/kto")
p.add_argument("--pairs", type=int, default=None, help="training pairs of rm/dpo/orpo/simpo/kto")
p.add_argument("--pref-ftx", type=float, default=1.0, help="SFT term (pref_ftx) of dpo and simpo")
p.add_argument("--rm-lr", type=float, default=1e-3, help="learning rate of the reward model")
p.add_argument("--rm-epochs", type=int, default=None, help="epochs of the reward model (default: twice --pref-epochs)")
p.add_argument("--sft-epochs", type=int, default=None, help="epochs of sft and of the sloppy policy (default 12; quick: 10 for sft, 8 for the sloppy policy)")
p.add_argument("--base-dir", default=None, help="reuse the starting policy (sft on sloppy data) saved here by an earlier run (written there when missing)")
p.add_argument("--threads", type=int, default=None, help="torch threads")
p.add_argument("--noise", default="plus1", choices=["pm1", "plus1"], help="the sloppy demonstrations: off by one either way (2 rows in 3), or one too high (1 row in 2)")
p.add_argument("--wrong", type=int, default=1, help="pairs per training problem, each with another wrong sum")
p.add_argument("--pref-lr", type=float, default=1e-3, help="learning rate of dpo/orpo/simpo/kto")
p.add_argument("--beta", type=float, default=None, help="pref_beta of dpo/orpo/kto (simpo: 2.5x)")
opt = p.parse_args()
STAGES = (opt.stages or ("sft,rm,dpo,orpo,simpo,kto,ppo,grpo" if opt.quick else "pt,sft,rm,dpo,orpo,simpo,kto,ppo,grpo")).split(",")
if opt.threads: torch.set_num_threads(opt.threads)
n_train, n_test = (2000, 100) if opt.quick else (2000, 200)
EPOCHS = opt.pref_epochs or (2 if opt.quick else 4)  # of the preference stages
SFT_EPOCHS = opt.sft_epochs or (10 if opt.quick else 12)  # of the sft stage
SLOPPY_EPOCHS = opt.sft_epochs or (8 if opt.quick else 12)  # of the sloppy policy the preference and RL stages start from
N_PAIRS = opt.pairs or 2000  # training pairs of the preference stages
# the preference stages may use more problems than sft (up to all 10,000 - n_test): the test problems stay disjoint
problems, test = arithmetic_split(max(n_train, N_PAIRS), n_test, seed=0)
train = problems[:n_train]

def targs(stage, **kw):
    base = dict(model_name_or_path=opt.model, stage=stage, warmup_ratio=0.05, dataset="unused", output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16,
                learning_rate=3e-3, num_train_epochs=EPOCHS, save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
                logging_steps=10, reward_model="unused", reward_funcs="number_match")
    a = get_train_args({**base, **kw}); a.training.remove_unused_columns = False
    return a

a0 = targs("sft")
tok = load_tokenizer(a0.model)
template = get_template("default"); template.fix_tokenizer(tok)
stop = template.stop_token_ids(tok)

def sft_rows(rows):
    out = []
    for r in rows:
        (pr, an), = template.encode_multiturn(tok, [{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}])
        out.append({"input_ids": pr + an, "attention_mask": [1] * (len(pr) + len(an)), "labels": [IGNORE_INDEX] * len(pr) + an})
    return out

@torch.no_grad()
def exact_match(model, rows):
    model.eval(); hits = 0
    tok.padding_side = "left"
    for i in range(0, len(rows), 50):
        batch = rows[i:i + 50]
        prompts = [template.render([{"role": "user", "content": r["instruction"]}], add_generation_prompt=True, tokenizer=tok) for r in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=stop)
        hits += sum(tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() == r["output"] for o, r in zip(out, batch))
    tok.padding_side = "right"
    return hits / len(rows)

@torch.no_grad()
def sampled_reward(model, rows, n=2):
    "Mean number_match reward of `n` answers per prompt sampled at temperature 1"
    model.eval(); rewards = []
    tok.padding_side = "left"
    for i in range(0, len(rows), 50):
        batch = rows[i:i + 50]
        prompts = [template.render([{"role": "user", "content": r["instruction"]}], add_generation_prompt=True, tokenizer=tok) for r in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=6, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=n,
                             pad_token_id=tok.pad_token_id, eos_token_id=stop)
        texts = [tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]
        rewards += number_match(texts, [r["output"] for r in batch for _ in range(n)])
    tok.padding_side = "right"
    return sum(rewards) / len(rewards)

results = {}  # (stage, figure) -> (before, after)
def line(stage, what, before, after, t0):
    results[stage, what] = before, after
    print(f"{stage:6s} {what:26s} {before:6.3f} -> {after:6.3f}   {time.time() - t0:6.1f}s", flush=True)

# pt then sft (full tuning): the pt text is the training problems written out, the sft data the same problems as chat
set_seed(0)
a = targs("pt", finetuning_type="full")
model = load_model(tok, a.model, a.finetuning, is_trainable=True)
em0 = exact_match(model, test) if "pt" in STAGES or "sft" in STAGES else 0.0
if "pt" in STAGES:
  t0 = time.time()
  a = targs("pt", finetuning_type="full", learning_rate=3e-3, num_train_epochs=1 if opt.quick else 2)
  text = [i for r in train for i in tok(f"{r['instruction']} {r['output']}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
  chunks = [{"input_ids": text[i:i + 64], "attention_mask": [1] * 64} for i in range(0, len(text) - 63, 64)]
  StageTrainer(model=model, args=a.training, data_collator=DataCollatorForLanguageModeling(tok, mlm=False), train_dataset=chunks).train()
  line("pt", "held-out exact match", em0, exact_match(model, test), t0)
if "sft" in STAGES:
  t0 = time.time()
  a = targs("sft", finetuning_type="full", learning_rate=3e-3, num_train_epochs=SFT_EPOCHS)
  StageTrainer(model=model, args=a.training, data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX), train_dataset=sft_rows(train)).train()
  line("sft", "held-out exact match", em0, exact_match(model, test), t0)

# the sloppy annotator: the sum, or the sum off by one
SLIPS = {"pm1": (-1, 0, 1), "plus1": (0, 1)}[opt.noise]
def slip(s, rng, slips):
    d = rng.choice(slips)
    return s + (abs(d) if s + d < 0 else d)

def sloppy_rows(rows, seed): rng = random.Random(seed); return [r | {"output": str(slip(int(r["output"]), rng, SLIPS))} for r in rows]

def off_by_one_pairs(rows, seed):
    "the annotator's slips as rejected replies (alpaca ranking rows)"
    return preference_rows(rows, seed=seed, offsets=[d for d in SLIPS if d])

# the pairs go through the real data pipeline: written as a dataset folder, read by get_dataset with the run's template
DATA = tempfile.mkdtemp()
pair_rows_train = [p for k in range(opt.wrong) for p in off_by_one_pairs(problems[:N_PAIRS], seed=1 + 10 * k)]
write_dataset(DATA, "pairs_train", pair_rows_train, ranking=True)
write_dataset(DATA, "pairs_test", off_by_one_pairs(test, seed=2), ranking=True)
write_dataset(DATA, "kto_train", unpaired_rows(pair_rows_train), formatting="openai", columns={"messages": "messages", "kto_tag": "label"})
def pipeline(name, stage):
    a = get_train_args(dict(model_name_or_path=opt.model, stage=stage, dataset=name, dataset_dir=DATA, template="default", output_dir=DATA))
    return get_dataset(a.data, template, tok, stage=stage, seed=0)["train_dataset"]
pairs_train, pairs_test, kto_train = pipeline("pairs_train", "dpo"), pipeline("pairs_test", "dpo"), pipeline("kto_train", "kto")
pair_collator, kto_collator = get_collator(tok, stage="dpo"), get_collator(tok, stage="kto")
# the reward model learns from the same pairs (a variant that also showed it the sum one too low, to keep PPO from
# rewarding low answers, reached only 0.6-0.86 held-out pair accuracy)

# the starting policy of the preference and RL stages: sft on the sloppy annotator's demonstrations. It answers with the
# sum or a neighbour about equally often, so it prefers the right sum of a held-out pair about half of the time.
base_dir = opt.base_dir
if not (base_dir and (Path(base_dir) / "config.json").exists()) and any(s in STAGES for s in ("rm", "dpo", "orpo", "simpo", "kto", "ppo", "grpo")):
  t0 = time.time(); set_seed(0)
  a = targs("sft", finetuning_type="full", learning_rate=3e-3, num_train_epochs=SLOPPY_EPOCHS)
  base = load_model(tok, a.model, a.finetuning, is_trainable=True)
  StageTrainer(model=base, args=a.training, data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX), train_dataset=sft_rows(sloppy_rows(train, seed=3))).train()
  line("sloppy", "held-out exact match", 0.0, exact_match(base, test), t0)
  print(f"sloppy held-out pref accuracy  {preference_accuracy(base, pairs_test, pair_collator):.3f}", flush=True)
  base_dir = base_dir or tempfile.mkdtemp(); base.save_pretrained(base_dir); tok.save_pretrained(base_dir)

if "rm" in STAGES:
  t0 = time.time(); set_seed(0)
  # the reward model starts from the sft model when there is one (as in InstructGPT), with a new, untrained score head
  a = targs("rm", finetuning_type="full", learning_rate=opt.rm_lr, num_train_epochs=opt.rm_epochs or 2 * EPOCHS,
            model_name_or_path=base_dir)
  rm = load_reward_model(tok, a.model, a.finetuning, is_trainable=True)
  acc0 = pairwise_accuracy(rm, pairs_test, pair_collator)
  RewardTrainer(model=rm, args=a.training, data_collator=pair_collator, train_dataset=pairs_train).train()
  line("rm", "held-out pair accuracy", acc0, pairwise_accuracy(rm, pairs_test, pair_collator), t0)

B = opt.beta or 0.1
for name, kw in (("dpo", {"pref_beta": B}), ("orpo", {"pref_loss": "orpo", "pref_beta": B}), ("simpo", {"pref_loss": "simpo", "pref_beta": 2.5 * B}),
                 ("kto", {"pref_beta": B})):
    if name not in STAGES: continue
    t0 = time.time(); set_seed(0)
    a = targs("kto" if name == "kto" else "dpo", finetuning_type="full", learning_rate=opt.pref_lr, **kw, model_name_or_path=base_dir, **({"pref_ftx": opt.pref_ftx} if name in ("dpo", "simpo") else {}))
    pol = load_model(tok, a.model, a.finetuning, is_trainable=True)
    acc0 = preference_accuracy(pol, pairs_test, pair_collator)
    em0 = exact_match(pol, test)
    if name == "kto": KTOTrainer(model=pol, args=a.training, finetuning_args=a.finetuning, ref_model=get_ref_model(a, tok), data_collator=kto_collator, train_dataset=kto_train).train()
    else: DPOTrainer(model=pol, args=a.training, finetuning_args=a.finetuning, ref_model=get_ref_model(a, tok), data_collator=pair_collator, train_dataset=pairs_train).train()
    line(name, "held-out pref accuracy", acc0, preference_accuracy(pol, pairs_test, pair_collator), t0)
    line(name, "held-out exact match", em0, exact_match(pol, test), t0)

# ppo's prompts go through the data pipeline (the unsupervised format, left-padded by the ppo collator). Its reward is
# number_match served over HTTP (reward_model_type: api, as a reward server would be): against learned reward models PPO
# raises their score while the held-out number_match falls (reward hacking; measured figures in the docstring above).
write_dataset(DATA, "sums", train)
prompts = get_dataset(targs("ppo", dataset="sums", dataset_dir=DATA, template="default").data, template, tok, stage="ppo", seed=0)["train_dataset"]
collate = get_collator(tok, stage="ppo")
if "ppo" in STAGES:
  import http.server, json, re, threading
  class NumberMatch(http.server.BaseHTTPRequestHandler):
      "Scores 'What is a + b?' + reply by number_match against a + b"
      def do_POST(self):
          texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"]
          sums = [str(sum(map(int, re.search(r"What is (\d+) \+ (\d+)\?", t).groups()))) for t in texts]
          body = json.dumps({"scores": number_match([t.split("?", 1)[1] for t in texts], sums)}).encode()
          self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)
      def log_message(self, *a): pass
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NumberMatch)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  reward_url = f"http://127.0.0.1:{server.server_address[1]}/score"
for name in ("ppo", "grpo"):
    if name not in STAGES: continue
    t0 = time.time(); set_seed(0)
    # grpo: TRL's per_device_train_batch_size counts replies, 64 = 16 prompts x grpo_num_generations 4 (ppo: 16 prompts)
    # ppo: LLaMA-Factory's ppo_epochs (4), scores normalised by their running moments (ppo_score_norm)
    a = targs(name, model_name_or_path=base_dir, learning_rate=2e-3 if name == "ppo" else 1e-3, per_device_train_batch_size=64 if name == "grpo" else 16,
              max_steps=30 if opt.quick else 60, warmup_ratio=0.0, logging_steps=5, max_new_tokens=6, temperature=1.0, ppo_epochs=4, ppo_score_norm=True)
    pol = load_model(tok, a.model, a.finetuning, is_trainable=True)
    torch.manual_seed(1); r0 = sampled_reward(pol, test)
    common = dict(model=pol, args=a.training, finetuning_args=a.finetuning, generating_args=a.generating, stop_ids=stop, processing_class=tok,
                  train_dataset=prompts, data_collator=collate)
    if name == "ppo": tr = PPOTrainer(reward_model=load_ppo_reward_model(tok, a.model, replace(a.finetuning, reward_model=reward_url, reward_model_type="api")), **common)
    else:  # TRL's trainer: a dataset of text prompts (rendered by the template) and the reference answers the reward reads
        from datasets import Dataset
        rows = Dataset.from_list([{"prompt": template.render([{"role": "user", "content": r["instruction"]}], add_generation_prompt=True, tokenizer=tok),
                                   "reference": r["output"]} for r in train])
        tr = GRPOTrainer(model=pol, args=grpo_config(a), reward_funcs=get_reward_funcs("number_match"), ref_model=get_ref_model(a, tok), stop_ids=stop,
                         processing_class=tok, train_dataset=rows)
    tr.train()
    torch.manual_seed(1); line(name, "held-out sampled reward", r0, sampled_reward(pol, test), t0)
    if name == "ppo":
        r = [l["reward"] for l in tr.state.log_history if "reward" in l]
        line(name, "reward of its samples", r[0], r[-1], t0)

# targets: the figures for the full run; for --quick, lower ones that a regression would still miss
TARGET = 0.75 if opt.quick else 0.9
missed = []
for (stage, what), (before, after) in results.items():
    if (stage, what) in (("grpo", "held-out sampled reward"), ("ppo", "held-out sampled reward"), ("ppo", "reward of its samples")): ok = after > before
    elif what in ("held-out pair accuracy", "held-out pref accuracy") or (stage == "sft" and what == "held-out exact match"): ok = after >= TARGET
    else: continue
    if not ok: missed.append(f"{stage} {what} {before:.3f} -> {after:.3f}")
print("all stages met their targets" if not missed else "missed: " + "; ".join(missed))
if opt.check and missed: raise SystemExit(1)
