"""One-way layering of the package, read from the source with `ast` (nothing is imported).

Every `import` counts, including those inside functions: a lazy import still ties two modules
together, and a circle between them means neither can be read, tested or changed alone.
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "llmfactory"
STAGES = {"sft", "pt", "rm", "dpo", "kto", "ppo", "grpo"}
ALLOWED_STAGE_IMPORTS = {("pt", "sft")}  # pre-training reuses sft.CausalLMTrainer


def _targets(node, mod, modules):
    "The package modules an import node `node` in module `mod` refers to."
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level:  # relative: `from .x import y`, `from . import x`
        base = node.module or ""
        names = [base] if base else [a.name for a in node.names]
    elif node.module == "llmfactory":  # `from llmfactory import x`
        names = [a.name for a in node.names]
    elif node.module:
        names = [node.module]
    else:
        names = []
    out = set()
    for n in names:
        if n.startswith("llmfactory."):
            n = n[len("llmfactory."):]
        n = n.split(".")[0]
        if n in modules and n != mod:
            out.add(n)
    return out


def import_graph(pkg=PKG):
    "`{module: {modules it imports}}` for every `pkg/*.py`, counting imports at any depth."
    files = {p.stem: p for p in sorted(pkg.glob("*.py")) if p.stem != "_modidx"}
    graph = {}
    for mod, p in files.items():
        tree = ast.parse(p.read_text(), filename=str(p))
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= _targets(node, mod, files)
        graph[mod] = deps
    return graph


def cycles(graph):
    "Each strongly connected component of more than one module, with one circle through it."
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's algorithm
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index: strong(v)
    return [(comp, _circle(graph, comp)) for comp in comps]


def _circle(graph, comp):
    "A shortest path from the first module of `comp` back to itself, inside `comp`."
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None: path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v; nxt.append(w)
        frontier = nxt
    return comp


def test_graph_sees_function_level_and_absolute_imports(tmp_path):
    (tmp_path / "a.py").write_text("from .b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    import llmfactory.c as c\n    return c\n")
    (tmp_path / "c.py").write_text("from llmfactory import a\n")
    (tmp_path / "d.py").write_text("import os\n")
    g = import_graph(tmp_path)
    assert g == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert cycles(g) == [(["a", "b", "c"], ["a", "b", "c", "a"])]


def test_no_import_circles():
    g = import_graph()
    assert {"template", "template_auto", "families", "model", "sft"} <= set(g), sorted(g)  # the package was read
    found = cycles(g)
    msg = "\n".join(f"  {' -> '.join(path)}   (modules in the circle: {', '.join(comp)})" for comp, path in found)
    assert not found, f"{len(found)} import circle(s) in llmfactory/ (function-level imports count):\n{msg}"


def test_stages_do_not_import_each_other():
    g = import_graph()
    bad = sorted((s, d) for s in STAGES for d in g.get(s, ()) if d in STAGES and (s, d) not in ALLOWED_STAGE_IMPORTS)
    assert not bad, "stage modules importing other stages: " + ", ".join(f"{s} -> {d}" for s, d in bad)
