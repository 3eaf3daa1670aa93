#!/usr/bin/env python3
"""Build README.md from nbs/index.ipynb (markdown cells as they are, code cells as fenced Python),
or check that README.md is in sync with it. `nbdev_readme` needs quarto, which these machines
cannot install; this writes the same content without it.

    python .ci/readme.py          # write README.md
    python .ci/readme.py --check  # exit 1 if README.md differs
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]).strip()
        if not src or src.startswith("#| hide"):
            continue
        parts.append(src if cell["cell_type"] == "markdown" else f"```python\n{src}\n```")
    return "<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->\n\n" + "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text, readme = render(), ROOT / "README.md"
    if "--check" in sys.argv:
        if readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of sync with nbs/index.ipynb: run `python .ci/readme.py`")
        print("README.md is in sync with nbs/index.ipynb")
    else:
        readme.write_text(text, encoding="utf-8")
        print("wrote", readme)
