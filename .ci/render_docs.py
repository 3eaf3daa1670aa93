#!/usr/bin/env python3
"""The docs pages with their results, without quarto: the notebooks as the tests ran them, converted to HTML.

The pytest notebook runner (conftest.py) calls `save_executed` for each notebook when `LLMFACTORY_EXECUTED_DIR` is set,
so the notebooks run once, as tests, and their outputs (printed figures, tables, matplotlib plots) are kept. Then

    python .ci/render_docs.py EXECUTED_DIR [SITE_DIR]     # SITE_DIR defaults to _site_local/

writes one HTML page per notebook (nbconvert, images embedded, links between notebooks pointing at the pages) and
contents.html, the list of pages (index.html is the home page, from nbs/index.ipynb). The GitHub docs workflow copies the same executed notebooks over nbs/ before `nbdev_docs`, so quarto renders
these outputs too.

Widgets (the Board) are live only in a browser with a kernel or the widget manager from a CDN; each widget output
also gets a static HTML snapshot of the widget at the end of the run (labels, values, images, logs), which the local
pages show instead."""
import base64, copy, html, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _snapshot(w) -> str:
    "A static HTML picture of widget `w` and its children, as they are now"
    import ipywidgets as W
    if getattr(getattr(w, "layout", None), "display", None) == "none" or getattr(w, "closed", False): return ""
    if isinstance(w, W.Image):
        return f'<img src="data:image/{w.format};base64,{base64.b64encode(w.value).decode()}"/>' if w.value else ""
    if isinstance(w, (W.Tab, W.Accordion)):
        titles = [w.get_title(i) if hasattr(w, "get_title") else "" for i in range(len(w.children))]
        return "".join(f"<details open><summary>{html.escape(t or '')}</summary>{_snapshot(c)}</details>" for t, c in zip(titles, w.children))
    if isinstance(w, W.Box):
        kind = "row" if isinstance(w, W.HBox) else "column"
        return f'<div style="display:flex;flex-direction:{kind};gap:6px;flex-wrap:wrap;align-items:flex-start">' + "".join(_snapshot(c) for c in w.children) + "</div>"
    if isinstance(w, W.Output):
        return "".join(_output_html(o) for o in w.outputs)
    if isinstance(w, (W.HTML, W.HTMLMath)): return f"<div>{w.value}</div>"
    if isinstance(w, W.Label): return f"<span>{html.escape(str(w.value))}</span>"
    if isinstance(w, W.Button): return f"<button>{html.escape(w.description)}</button>"
    if isinstance(w, W.Textarea): return f"<pre>{html.escape(w.value)}</pre>" if w.value else ""
    if hasattr(w, "value"):
        label = f"{html.escape(w.description)}: " if getattr(w, "description", "") else ""
        value = w.value if not isinstance(w.value, (list, tuple)) else ", ".join(map(str, w.value))
        return f"<span>{label}<code>{html.escape(str(value))}</code></span>"
    return ""


def _output_html(o) -> str:
    "An Output widget's own output (text or image) as HTML"
    data = o.get("data", {})
    if "image/png" in data: return f'<img src="data:image/png;base64,{data["image/png"]}"/>'
    if "text/html" in data: return "".join(data["text/html"])
    text = o.get("text") or "".join(data.get("text/plain", ""))
    return f"<pre>{html.escape(''.join(text))}</pre>" if text else ""


def _closure(ids, widgets) -> list:
    "The widgets with model ids `ids` and all the widgets they contain"
    seen, todo = set(), list(ids)
    while todo:
        i = todo.pop()
        if i in seen or i not in widgets: continue
        seen.add(i)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(widgets[i].get_state(), default=str))
    return [widgets[i] for i in seen]


def _plain(o):
    "execnb's attribute dicts as plain JSON objects"
    return json.loads(json.dumps(o, default=str))


def _overprint(text: str) -> str:
    "Stream text as a terminal shows it: a progress bar redrawn with \\r keeps only its last state"
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def save_executed(src: Path, nb, dest_root) -> Path:
    "Write notebook `src` with the outputs of the run `nb` (processed by nbdev, cells keep their `idx_`) under `dest_root`"
    src = Path(src).resolve()
    raw = json.loads(src.read_text(encoding="utf-8"))
    widgets = {}
    try:
        from ipywidgets.widgets.widget import _instances as widgets
    except ImportError: pass
    for cell in nb.cells:
        i = cell.get("idx_")
        if i is None or cell.cell_type != "code": continue
        outs = []
        for o in _plain(cell.get("outputs", [])):
            if o["output_type"] == "stream": o["text"] = _overprint("".join(o["text"]))
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id") in widgets:
                try: o["data"]["text/html"] = _snapshot(widgets[view["model_id"]])
                except Exception as e: o["data"]["text/html"] = f"<pre>(no snapshot of this widget: {html.escape(repr(e))})</pre>"
            if o["output_type"] in ("display_data", "execute_result") and not o.get("data"): continue  # nothing to show
            outs.append(o)
        raw["cells"][i]["outputs"] = outs
    shown = [o["data"][WIDGET_VIEW]["model_id"] for c in raw["cells"] for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    if shown:  # the state of the widgets this notebook shows (not of every widget in the process), for quarto's live widgets
        from ipywidgets import Widget
        raw["metadata"]["widgets"] = {WIDGET_STATE: Widget.get_manager_state(drop_defaults=True, widgets=_closure(shown, widgets))}
    raw["metadata"].setdefault("language_info", {"name": "python"})
    rel = src.relative_to(NBS) if src.is_relative_to(NBS) else src.relative_to(ROOT)
    out = Path(dest_root) / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def _for_page(nb: dict) -> dict:
    "What the docs page shows: no hidden cells, no `#|` directive lines, widget outputs as their snapshots"
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb["cells"]:
        lines = "".join(c["source"]).splitlines(keepends=True)
        directives = [l for l in lines if l.startswith("#|")]
        if any(re.match(r"#\|\s*(hide|include:\s*false)", l) for l in directives) or "nbdev_export(" in "".join(lines): continue
        c["source"] = "".join(l for l in lines if not l.startswith("#|")).lstrip("\n")
        if c["cell_type"] == "code":
            c["outputs"] = [o for o in c["outputs"] if o.get("data") or o["output_type"] not in ("display_data", "execute_result")]
        for o in c.get("outputs", []):
            if "text/html" in o.get("data", {}): o["data"].pop(WIDGET_VIEW, None)
        cells.append(c)
    nb["cells"] = cells
    nb["metadata"].pop("widgets", None)
    return nb


def _title(nb: dict, fallback: str) -> tuple[str, str]:
    "The page title and summary of an nbdev notebook (`# Title` and `> summary` in its first markdown cell)"
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            s = "".join(c["source"])
            t = re.search(r"^#\s+(.+)$", s, re.M)
            d = re.search(r"^>\s*(.+)$", s, re.M)
            if t: return t.group(1).strip(), (d.group(1).strip() if d else "")
    return fallback, ""


def render(executed: Path, site: Path) -> list[Path]:
    "Convert every executed notebook under `executed` to an HTML page under `site`, plus an index; the pages written"
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True)
    pages, entries = [], []
    for src in sorted(executed.rglob("*.ipynb")):
        rel = src.relative_to(executed)
        nb = json.loads(src.read_text(encoding="utf-8"))
        title, summary = _title(nb, rel.stem)
        page = nbformat.reads(json.dumps(_for_page(nb)), as_version=4)  # reads, not from_dict: it joins multi-line text
        body, _ = exporter.from_notebook_node(page, resources={"metadata": {"name": title}})
        body = re.sub(r'href="([^"]+?)\.ipynb(#[^"]*)?"',
                      lambda m: m.group(0) if "://" in m.group(1) else f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
        out = (site / rel).with_suffix(".html")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
        pages.append(out)
        entries.append((str(rel.with_suffix(".html")), title, summary))
    order = lambda e: (0 if e[0].startswith("index") else 1 if e[0].startswith("tutorials") else 2 if e[0].startswith("concepts") else 3, e[0])
    items = "\n".join(f'<li><a href="{html.escape(h)}">{html.escape(t)}</a> <small>{html.escape(s)}</small></li>' for h, t, s in sorted(entries, key=order))
    (site / "contents.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>llmfactory docs (local)</title></head>"
                                     f"<body><h1>llmfactory: the executed notebooks</h1><ul>{items}</ul></body></html>", encoding="utf-8")
    return pages


def main(argv):
    if not argv: sys.exit(__doc__)
    executed = Path(argv[0])
    site = Path(argv[1]) if len(argv) > 1 else ROOT / "_site_local"
    if not executed.exists(): sys.exit(f"{executed} does not exist: run pytest with LLMFACTORY_EXECUTED_DIR={executed} first")
    pages = render(executed, site)
    print(f"{len(pages)} pages rendered into {site} (list: {site / 'contents.html'})")


if __name__ == "__main__":
    main(sys.argv[1:])
