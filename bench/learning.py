"""Learning proof: each training stage on the tiny model (CPU, fp32) on the synthetic arithmetic task.

    python bench/learning.py [--quick]

Prints one line per stage: the stage's own figure before and after training, on held-out data, and the time.
pt then sft: exact match of greedy answers; rm: pairwise accuracy; dpo/kto/orpo/simpo: preference accuracy
(policy log-prob of the correct sum > a wrong sum); ppo/grpo: mean reward of sampled answers.
The data are built here from llmfactory.demo.arithmetic_split in the data pipeline's formats.
rm, dpo, kto, orpo and simpo start from the untrained tiny model (preference accuracy ~50%): to prefer the right sum they must
learn addition from the pairs alone. ppo and grpo start from the sft model, as in the InstructGPT recipe (sft -> rm -> ppo).

Status (full run, tiny-qwen2, CPU): sft reaches 0.91 held-out exact match; orpo (which carries an SFT term) raises
held-out preference accuracy 0.43 -> 0.77; rm, dpo, simpo and kto fit their training pairs (0.6-0.8) but do not yet
generalise to held-out pairs (~0.5), and ppo/grpo rewards move little within 60 steps. Those figures are below the
targets; more epochs, or starting the preference stages from a partly trained model, are the next things to try.
The reward model from the sft model: 0.59 -> 0.53 at lr 1e-4 for 2 epochs, 0.69 at 3e-4 for 6 epochs, 0.57 at 1e-3
(--rm-lr, --rm-epochs; --sft-dir reuses a saved sft model between such trials). DPO from the untrained model with
an SFT term (--pref-ftx 1.0): 0.425 -> 0.545 held-out preference accuracy in 12 epochs.
"""
import argparse, tempfile, time, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, set_seed

from llmfactory.data import IGNORE_INDEX
from llmfactory.demo import arithmetic_split
from llmfactory.dpo import DPOTrainer, get_ref_model, pair_collator, pair_rows, preference_accuracy
from llmfactory.grpo import GRPOTrainer, get_reward_funcs
from llmfactory.hparams import get_train_args
from llmfactory.kto import KTOTrainer, kto_collator, kto_rows
from llmfactory.model import load_model, load_tokenizer
from llmfactory.ppo import PPOTrainer, prompt_collator, prompt_rows
from llmfactory.rm import RewardTrainer, load_reward_model, pairwise_accuracy
from llmfactory.callbacks import StageTrainer
from llmfactory.template import get_template

p = argparse.ArgumentParser(); p.add_argument("--quick", action="store_true")
p.add_argument("--model", default="tiny-qwen2")  # its tokenizer splits numbers into digits, which makes addition learnable
p.add_argument("--stages", default="pt,sft,rm,dpo,orpo,simpo,kto,ppo,grpo", help="comma-separated; ppo and grpo need sft")
p.add_argument("--pref-epochs", type=int, default=None, help="epochs of rm/dpo/orpo/simpo/kto")
p.add_argument("--pairs", type=int, default=None, help="training pairs of rm/dpo/orpo/simpo/kto")
p.add_argument("--sft-dir", default=None, help="reuse the sft model saved here by an earlier run (written there when missing)")
p.add_argument("--pref-ftx", type=float, default=0.0, help="SFT term added to dpo/simpo/kto (pref_ftx)")
p.add_argument("--rm-lr", type=float, default=3e-3, help="learning rate of the reward model")
p.add_argument("--rm-epochs", type=int, default=None, help="epochs of the reward model (default: --pref-epochs)")
opt = p.parse_args()
STAGES = opt.stages.split(",")
n_train, n_test = (600, 100) if opt.quick else (2000, 200)
EPOCHS = opt.pref_epochs or (2 if opt.quick else 12)  # of the preference stages
N_PAIRS = opt.pairs or (300 if opt.quick else 2000)  # training pairs of the preference stages
train, test = arithmetic_split(n_train, n_test, seed=0)

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

def line(stage, what, before, after, t0): print(f"{stage:6s} {what:22s} {before:6.3f} -> {after:6.3f}   {time.time() - t0:6.1f}s", flush=True)

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
  a = targs("sft", finetuning_type="full", learning_rate=3e-3, num_train_epochs=6 if opt.quick else 12)
  StageTrainer(model=model, args=a.training, data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX), train_dataset=sft_rows(train)).train()
  line("sft", "held-out exact match", em0, exact_match(model, test), t0)
  sft_dir = opt.sft_dir or tempfile.mkdtemp(); model.save_pretrained(sft_dir); tok.save_pretrained(sft_dir)
elif opt.sft_dir: sft_dir = opt.sft_dir; STAGES.append("sft")

pairs_train, pairs_test = pair_rows(tok, template, rows=train[:N_PAIRS], seed=1), pair_rows(tok, template, rows=test, seed=2)

if "rm" in STAGES or "ppo" in STAGES:
  t0 = time.time(); set_seed(0)
  # the reward model starts from the sft model when there is one (as in InstructGPT), with a new, untrained score head
  a = targs("rm", finetuning_type="full", learning_rate=opt.rm_lr, num_train_epochs=opt.rm_epochs or EPOCHS,
            **({"model_name_or_path": sft_dir} if "sft" in STAGES else {}))
  rm = load_reward_model(tok, a.model, a.finetuning, is_trainable=True)
  acc0 = pairwise_accuracy(rm, pairs_test, pair_collator)
  RewardTrainer(model=rm, args=a.training, data_collator=pair_collator, train_dataset=pairs_train).train()
  line("rm", "held-out pair accuracy", acc0, pairwise_accuracy(rm, pairs_test, pair_collator), t0)

# a beta of 1-2.5 instead of the default 0.1: from an untrained model the small default makes the gradients ~20x weaker than SFT's
for name, kw in (("dpo", {"pref_beta": 1.0}), ("orpo", {"pref_loss": "orpo", "pref_beta": 1.0}), ("simpo", {"pref_loss": "simpo", "pref_beta": 2.5}),
                 ("kto", {"pref_beta": 1.0})):
    if name not in STAGES: continue
    t0 = time.time(); set_seed(0)
    a = targs("kto" if name == "kto" else "dpo", finetuning_type="full", **kw, **({"pref_ftx": opt.pref_ftx} if name != "orpo" else {}))
    pol = load_model(tok, a.model, a.finetuning, is_trainable=True)
    acc0 = preference_accuracy(pol, pairs_test, pair_collator)
    if name == "kto": KTOTrainer(model=pol, args=a.training, finetuning_args=a.finetuning, ref_model=get_ref_model(a, tok), data_collator=kto_collator, train_dataset=kto_rows(pairs_train)).train()
    else: DPOTrainer(model=pol, args=a.training, finetuning_args=a.finetuning, ref_model=get_ref_model(a, tok), data_collator=pair_collator, train_dataset=pairs_train).train()
    line(name, "held-out pref accuracy", acc0, preference_accuracy(pol, pairs_test, pair_collator), t0)

prompts = prompt_rows(tok, template, train)
collate = lambda rows: prompt_collator(rows, tok.pad_token_id)
for name in ("ppo", "grpo"):
    if name not in STAGES: continue
    t0 = time.time(); set_seed(0)
    a = targs(name, model_name_or_path=sft_dir, learning_rate=1e-3, per_device_train_batch_size=16, max_steps=15 if opt.quick else 60, warmup_ratio=0.0, logging_steps=5, max_new_tokens=6, temperature=1.0, ppo_epochs=2)
    pol = load_model(tok, a.model, a.finetuning, is_trainable=True)
    common = dict(model=pol, args=a.training, finetuning_args=a.finetuning, generating_args=a.generating, stop_ids=stop, processing_class=tok,
                  train_dataset=prompts, data_collator=collate)
    tr = PPOTrainer(reward_model=rm.eval(), **common) if name == "ppo" else GRPOTrainer(reward_funcs=get_reward_funcs("number_match"), **common)
    tr.train()
    r = [l["reward"] for l in tr.state.log_history if "reward" in l]
    line(name, "mean sampled reward" + (" (rm)" if name == "ppo" else " (num)"), r[0], r[-1], t0)
