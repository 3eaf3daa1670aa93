#!/usr/bin/env python3
"""Find notebook cells that nbdev's docs build would execute by mistake: non-exported code cells that
mix imports with other code (nbdev runs every cell containing an import when it renders the docs);
and cell ids used twice in a notebook (Jupyter and quarto expect them unique).

    python .ci/check_nbs.py [NOTEBOOK ...]   # default: every notebook in nbs/
"""
import ast, json, sys
from pathlib import Path


def bad_cells(path):
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        lines = [l for l in src.splitlines() if not l.strip().startswith("#|")]
        directives = [l for l in src.splitlines() if l.strip().startswith("#|")]
        if any("export" in d or "eval: false" in d for d in directives):
            continue
        try:
            tree = ast.parse("\n".join(l for l in lines if not l.lstrip().startswith(("!", "%"))))
        except SyntaxError:
            continue
        nodes = list(ast.walk(tree))
        has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
        has_other = any(isinstance(n, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.With, ast.For, ast.If,
                                       ast.Assert, ast.While, ast.Try)) for n in tree.body)
        if has_import and has_other and "nbdev_export" not in src:
            yield i, src


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    files = sys.argv[1:] or sorted(str(p) for p in (root / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in str(p))
    n = 0
    for f in files:
        for i, src in bad_cells(f):
            n += 1
            print(f"{f}: cell {i} mixes imports with other code:\n    " + src.replace("\n", "\n    ")[:400])
        ids = [c.get("id") for c in json.loads(Path(f).read_text(encoding="utf-8"))["cells"]]
        for dup in sorted({i for i in ids if i and ids.count(i) > 1}):
            n += 1
            print(f"{f}: cell id {dup} is used by {ids.count(dup)} cells")
    sys.exit(1 if n else 0)
