# %%
#| default_exp demo

# %% [md]
# # Demo data
#
# > Small datasets that llmfactory writes itself, so every example and test runs offline in seconds

# %%
#| export
from __future__ import annotations
import json, random
from pathlib import Path

# %%
#| hide
from fastcore.test import *

# %% [md]
# Fine-tuning examples need data, and examples that download data break without a network. llmfactory generates its demo data from code: a few hand-written instructions plus synthetic tasks (arithmetic, word reversal) whose answers can be checked exactly, which makes them good for proving that a training stage *learns*. The files land in the project's `data/` folder next to a `dataset_info.json` in LLaMA-Factory's format, so they are used exactly like user data.

# %% [md]
# ## Hand-written instructions

# %%
#| export
GENERAL_QA = [
    ("Give three tips for staying healthy.", "", "Eat plenty of vegetables, sleep seven to eight hours a night, and walk or exercise every day."),
    ("What is the capital of France?", "", "The capital of France is Paris."),
    ("What is the capital of Japan?", "", "The capital of Japan is Tokyo."),
    ("What is the capital of Italy?", "", "The capital of Italy is Rome."),
    ("Translate the sentence into French.", "Good morning, my friend.", "Bonjour, mon ami."),
    ("Summarize the text in one sentence.", "Fine-tuning adapts a pretrained language model to a new task by training it further on a small dataset of examples.", "Fine-tuning teaches a pretrained model a new task with a few examples."),
    ("Explain what a language model is.", "", "A language model predicts the next token of a text from the tokens before it, which lets it write and answer questions."),
    ("Name the primary colors.", "", "The primary colors are red, yellow and blue."),
    ("Write a haiku about the sea.", "", "Grey waves fold and break,\nsalt wind carries gull voices,\nthe tide counts the hours."),
    ("What does LoRA stand for?", "", "LoRA stands for Low-Rank Adaptation: it trains two small matrices beside each frozen weight."),
    ("Classify the sentiment of the review.", "The battery lasts all day and the screen is bright.", "Positive"),
    ("Classify the sentiment of the review.", "It broke after two days and support never answered.", "Negative"),
    ("Convert the temperature to Fahrenheit.", "20 degrees Celsius", "20 degrees Celsius is 68 degrees Fahrenheit."),
    ("List three programming languages.", "", "Python, Rust and JavaScript."),
    ("Why is the sky blue?", "", "Air scatters blue sunlight more strongly than red light, so the sky looks blue."),
    ("Suggest a name for a coffee shop.", "", "The Daily Grind."),
    ("Rewrite the sentence in the passive voice.", "The cat chased the mouse.", "The mouse was chased by the cat."),
    ("What is the boiling point of water at sea level?", "", "Water boils at 100 degrees Celsius at sea level."),
    ("Give an antonym of the word.", "ancient", "modern"),
    ("Explain gradient descent in one sentence.", "", "Gradient descent lowers a loss step by step by moving the parameters against its gradient."),
    ("How many days are in a leap year?", "", "A leap year has 366 days."),
    ("Write a short greeting for a birthday card.", "", "Happy birthday! Wishing you a year full of laughter and good friends."),
    ("What is the largest planet in the solar system?", "", "Jupiter is the largest planet in the solar system."),
    ("Describe a rainbow to a child.", "", "A rainbow is a big colourful bridge of light that appears when the sun shines through rain."),
    ("Sort the numbers in ascending order.", "42, 7, 19, 3", "3, 7, 19, 42"),
    ("What is the plural of the word?", "mouse", "mice"),
    ("Recommend a book for a beginner programmer.", "", "Automate the Boring Stuff with Python is a friendly first book."),
    ("Explain what an epoch is in training.", "", "An epoch is one full pass of the training loop over every example in the dataset."),
]

# %% [md]
# Prose for the tokenizer corpus, so that the tiny models' tokenizers see ordinary English too:

# %%
#| export
PROSE = """Large language models are trained in stages. Pre-training reads a great deal of text and learns to predict the next token.
Supervised fine-tuning then shows the model conversations in a chat format, and the loss is computed on the answers only.
Reward modelling teaches a second model to score answers, and reinforcement learning or direct preference optimisation moves the policy towards answers people prefer.
Low-rank adapters keep the base weights frozen and train a few small matrices, so a model of billions of parameters can be tuned on one graphics card.
Quantised training stores the frozen weights in four bits and computes the adapters in higher precision.
A chat template turns a list of messages into the exact text the model was trained on, with special tokens that mark who is speaking and where a turn ends.
When the template is wrong the model does not know where to stop, and it repeats itself or answers its own questions.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Numbers such as 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols such as + - * / = ( ) [ ] { } < > : ; , . ! ? ' " # @ & % $ _ | appear in code and mathematics.
def add(a, b):
    return a + b
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
"""

# %%
assert "chat template" in PROSE and len(GENERAL_QA) >= 25

# %% [md]
# ## Synthetic tasks
#
# Each synthetic task has exactly one right answer, so after training we can measure exact-match accuracy on a held-out split. Rows are alpaca-style dictionaries (`instruction`, `input`, `output`).

# %%
#| export
def arithmetic_rows(n:int, # number of rows
                    seed:int=0, # random seed, rows are deterministic
                    max_value:int=99, # operands are drawn from 0..max_value
                    exclude:set|None=None, # (a, b) pairs to leave out, e.g. the training pairs
                   ) -> list[dict]:
    "`n` distinct addition problems `a + b` as alpaca rows"
    rng, rows, seen = random.Random(seed), [], set(exclude or ())
    if n > (max_value + 1) ** 2 - len(seen): raise ValueError(f"only {(max_value+1)**2 - len(seen)} distinct pairs are left, asked for {n}")
    while len(rows) < n:
        a, b = rng.randint(0, max_value), rng.randint(0, max_value)
        if (a, b) in seen: continue
        seen.add((a, b))
        rows.append({"instruction": f"What is {a} + {b}?", "input": "", "output": str(a + b)})
    return rows

# %%
rows = arithmetic_rows(5, seed=1)
rows[0]

# %%
for r in arithmetic_rows(50, seed=3):
    a, b = r["instruction"][len("What is "):-1].split(" + ")
    test_eq(int(r["output"]), int(a) + int(b))
test_eq(arithmetic_rows(5, seed=1), rows)
test_fail(lambda: arithmetic_rows(5, max_value=1), contains="distinct pairs")

# %% [md]
# A held-out set must share no problem with the training set, otherwise "accuracy" measures memory. `exclude` makes that easy:

# %%
#| export
def _pair(row): return tuple(int(x) for x in row["instruction"][len("What is "):-1].split(" + "))

def arithmetic_split(n_train:int, n_test:int, seed:int=0, max_value:int=99) -> tuple[list[dict], list[dict]]:
    "Disjoint train and held-out addition problems"
    train = arithmetic_rows(n_train, seed=seed, max_value=max_value)
    test = arithmetic_rows(n_test, seed=seed + 1, max_value=max_value, exclude={_pair(r) for r in train})
    return train, test

# %%
train, test = arithmetic_split(200, 50)
assert not {_pair(r) for r in train} & {_pair(r) for r in test}
test_eq((len(train), len(test)), (200, 50))

# %% [md]
# Word reversal is a second task with a checkable answer:

# %%
#| export
WORDS = ("apple banana cherry dragon eagle forest garden harbor island jungle kettle lemon mirror needle orange "
         "pepper quartz river silver tiger umbrella violet window yellow zebra anchor bridge candle desert engine "
         "feather guitar hammer insect jacket kingdom ladder marble nature ocean pencil rabbit saddle tunnel valley "
         "wizard basket castle dinner effort finger goblin helmet icicle jigsaw kitten lizard meadow napkin oyster").split()

def reversal_rows(n:int, seed:int=0) -> list[dict]:
    "`n` alpaca rows asking to spell a word backwards"
    rng = random.Random(seed)
    return [{"instruction": "Reverse the letters of the word.", "input": w, "output": w[::-1]}
            for w in (rng.choice(WORDS) for _ in range(n))]

# %%
r = reversal_rows(3, seed=0)[0]
test_eq(r["output"][::-1], r["input"])

# %% [md]
# ## The demo datasets
#
# `alpaca_demo` mixes the hand-written rows with synthetic ones: it is the default dataset of the examples and of the README's quick start.

# %%
#| export
def _alpaca(q): return {"instruction": q[0], "input": q[1], "output": q[2]}

def alpaca_demo(seed:int=0) -> list[dict]:
    "The mixed alpaca-format demo set: hand-written, arithmetic and reversal rows, shuffled"
    rows = [_alpaca(q) for q in GENERAL_QA] + arithmetic_rows(100, seed=seed + 100) + reversal_rows(60, seed=seed)
    random.Random(seed).shuffle(rows)
    return rows

# %%
demo = alpaca_demo()
test_eq(len(demo), len(GENERAL_QA) + 160)
test_eq(alpaca_demo(), demo)
assert all(set(r) == {"instruction", "input", "output"} for r in demo)

# %% [md]
# `demo_corpus` is the text the tiny models' tokenizers are trained on (see `llmfactory.tiny`): every demo row plus the prose above.

# %%
#| export
def demo_corpus() -> list[str]:
    "Text lines the tiny tokenizers are trained on"
    rows = alpaca_demo() + arithmetic_split(400, 100)[0]
    return PROSE.splitlines() + [" ".join(v for v in r.values() if v) for r in rows]

# %%
corpus = demo_corpus()
assert len(corpus) > 500 and any("Paris" in line for line in corpus)

# %% [md]
# `write_demo_data` writes every demo file and the registry that names them. Writing is deterministic, so the files committed in `data/` are exactly what this function produces.

# %%
#| export
DEMO_DATASET_INFO = {
    "alpaca_demo": {"file_name": "alpaca_demo.json"},
    "math_train": {"file_name": "math_train.json"},
    "math_test": {"file_name": "math_test.json"},
}

def _dump(obj): return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"

def demo_files() -> dict[str, str]:
    "File name -> text of every demo file"
    math_train, math_test = arithmetic_split(2000, 200, seed=7)
    return {"alpaca_demo.json": _dump(alpaca_demo()), "math_train.json": _dump(math_train),
            "math_test.json": _dump(math_test), "dataset_info.json": _dump(DEMO_DATASET_INFO)}

def write_demo_data(path="data") -> list[Path]:
    "Write the demo datasets and their `dataset_info.json` into `path`"
    path = Path(path); path.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in demo_files().items():
        (path / name).write_text(text, encoding="utf-8"); out.append(path / name)
    return out

# %%
import tempfile

# %%
with tempfile.TemporaryDirectory() as d:
    files = write_demo_data(d)
    info = json.loads((Path(d) / "dataset_info.json").read_text())
    for name, entry in info.items(): assert (Path(d) / entry["file_name"]).exists(), name
    test_eq(len(json.loads((Path(d) / "math_test.json").read_text())), 200)

# %% [md]
# The project's `data/` folder holds the output of `write_demo_data`; this check fails if the two drift apart:

# %%
for name, text in demo_files().items():
    test_eq((Path("../data") / name).read_text(encoding="utf-8"), text)

# %%
#| hide
import nbdev; nbdev.nbdev_export()
