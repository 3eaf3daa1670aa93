#!/usr/bin/env python3
"""The Board in a real browser, in JupyterLab and as the `llmfactory webui` page (Voilà), both headless on loopback,
driven with Debian's Chromium through Playwright. In each, from the widgets only:

1. a QLoRA (4-bit) sft run on two datasets with a validation split;
2. a long run stopped with Abort, then resumed from the checkpoint picked in the resume list;
3. a DPO run with pref_loss simpo (from the RLHF accordion);
4. a chat with the trained adapter, a predict run whose ROUGE/BLEU table shows, and an export.

Screenshots of each step go into ARTIFACT_DIR.

    python .ci/browser_test.py [ARTIFACT_DIR] [--only lab|webui]   # default: test_artifacts/, both
    python .ci/browser_test.py [ARTIFACT_DIR] --only docs [--site _site_local]

`--only docs` opens the pages that `.ci/render_docs.py` wrote (the notebooks as the tests ran them) and checks that
each of DOC_PAGES shows its results: images drawn (nonzero natural size) and output areas with text; a full-page
screenshot of each goes into ARTIFACT_DIR.

Exits 0 with a note when Chromium or the playwright package is missing (install: apt-get install chromium;
pip install playwright — no browser download is needed, the Debian binary is used)."""
import json, os, re, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CELL = """from llmfactory.board import Board
board = Board(dataset_dir="data", output_dir="saves/sft")
board"""
TIMEOUT = 240_000  # ms, for a training run on a shared CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def wait_http(url: str, proc, timeout: float = 120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f"the server exited with code {proc.returncode}: see its log")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class Panel:
    "The Board's widgets in a page, found by their labels"
    def __init__(self, page, root, shots: Path, prefix: str):
        self.page, self.root, self.shots, self.prefix, self.n = page, root, shots, prefix, 0

    def control(self, label: str):
        lab = self.page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
        return self.root.locator(".widget-inline-hbox").filter(has=lab).filter(visible=True).first

    def fill(self, label: str, value):
        box = self.control(label).locator("input, textarea").first
        box.fill(str(value)); box.press("Tab")

    def select(self, label: str, *values):
        self.control(label).locator("select").select_option(list(values) if len(values) > 1 else values[0])

    def check(self, label: str, on: bool = True):
        box = self.root.locator(".widget-checkbox", has_text=label).locator("input[type=checkbox]").first
        box.set_checked(on)

    def open(self, title: str):
        head = self.root.locator(".jupyter-widget-Collapse-header, .lm-AccordionPanel-title, .p-Collapse-header", has_text=title).first
        head.wait_for(state="visible", timeout=60_000)  # an accordion shown by another choice (the stage) appears a moment later
        head.click()

    def tab(self, title: str):
        self.root.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text=title).first.click()

    def click(self, text: str):
        self.root.locator("button.jupyter-button", has_text=re.compile(f"^{re.escape(text)}$")).first.click()

    def wait_text(self, text: str, timeout: int = TIMEOUT):
        self.root.locator(f"text={text}").first.wait_for(timeout=timeout)

    def train(self):
        "Start a run and wait until it is done"
        self.click("Start"); self.wait_text("training started", 60_000); self.wait_text("training done")

    def wait_config(self, text: str, timeout: int = 30_000):
        "Wait until the config preview (a textarea) holds `text`"
        self.page.wait_for_function("t => [...document.querySelectorAll('textarea')].some(a => a.value.includes(t))", arg=text, timeout=timeout)

    def shot(self, name: str):
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.prefix}-{self.n}-{name}.png"), full_page=True)

    def status(self) -> str:
        return self.root.inner_text()


def drive(p: Panel, work: Path):
    "The acceptance scenario, from the widgets only"
    # 1. QLoRA sft on two datasets with a validation split
    p.fill("Output dir", "saves/qlora")
    p.select("Quantization bit", "4")
    p.select("Dataset", "alpaca_demo", "identity_demo")
    p.fill("Val size", 0.1); p.fill("Max samples", 48); p.fill("Cutoff length", 128); p.fill("Learning rate", 1e-3)
    p.open("Extra configurations")
    p.fill("Max steps", 6); p.fill("Logging steps", 1); p.fill("Save steps", 3)
    p.wait_config("quantization_bit: 4")
    p.shot("qlora-config")
    p.train()
    assert (work / "saves/qlora/adapter_model.safetensors").exists(), "no adapter after the QLoRA run"
    p.page.wait_for_function("() => [...document.querySelectorAll('img')].some(i => i.naturalWidth > 0)")
    p.shot("qlora-done")
    # 2. stop a long run, resume it from the checkpoint picked in the list
    p.select("Quantization bit", "none"); p.fill("Val size", 0)
    p.fill("Output dir", "saves/long"); p.fill("Max steps", 400); p.fill("Save steps", 1000)
    p.click("Start")
    end = time.time() + 120
    while not (work / "saves/long/trainer_log.jsonl").exists() or len((work / "saves/long/trainer_log.jsonl").read_text().splitlines()) < 2:
        if time.time() > end: raise RuntimeError("the long run logged nothing")
        time.sleep(0.5)
    p.click("Abort"); p.wait_text("training stopped")
    cks = sorted((work / "saves/long").glob("checkpoint-*"))
    assert len(cks) == 1, cks
    step = int(cks[0].name.split("-")[1])
    p.select("Resume from", cks[0].name); p.fill("Max steps", step + 2)
    p.shot("resume-config")
    p.train()
    assert (work / f"saves/long/checkpoint-{step + 2}").exists(), "the resumed run did not reach its last step"
    p.shot("resumed")
    # 3. DPO with the SimPO loss
    p.select("Resume from", "")
    p.select("Stage", "dpo"); p.select("Dataset", "math_pairs_train")
    p.fill("Output dir", "saves/dpo"); p.fill("Max steps", 2)
    p.open("RLHF configurations"); p.select("Loss type", "simpo")
    p.wait_config("pref_loss: simpo")
    p.train()
    assert "pref_loss: simpo" in (work / "saves/dpo/llmfactory_config.yaml").read_text()
    p.shot("dpo-done")
    # 4. chat, predict, export with the QLoRA run's adapter
    adapter = "saves/qlora"  # as the adapter lists show it: under the output_dir's parent
    p.tab("Chat")
    p.control("Adapter").locator("select").select_option(adapter)
    p.click("Load model"); p.wait_text("with adapter", 120_000)
    p.fill("Input", "What is 2 + 2?"); p.fill("Max new tokens", 8)
    p.click("Submit"); p.wait_text("assistant:", 120_000)
    p.shot("chat")
    p.tab("Evaluate & Predict")
    p.control("Adapter").locator("select").select_option(adapter)
    p.select("Predict dataset", "alpaca_demo"); p.fill("Max new tokens", 8)
    p.click("Predict"); p.wait_text("predict_rouge-1", TIMEOUT)
    assert (work / "saves/qlora/predict/predict_results.json").exists()
    p.shot("predict")
    p.tab("Export")
    p.control("Adapter").locator("select").select_option(adapter)
    p.fill("Export dir", str(work / "saves/merged"))
    p.click("Export"); p.wait_text("exported to", TIMEOUT)
    assert (work / "saves/merged/config.json").exists()
    p.shot("export")
    # 5. the same panel in Chinese
    p.select("Language", "zh"); p.wait_text("评估与预测", 30_000)
    p.tab("训练"); p.shot("zh")


def serve_lab(work: Path, out: Path, env: dict):
    port, token = free_port(), secrets.token_hex(16)
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": CELL}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (work / "board.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    log = open(out / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--allow-root",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
    return proc, log, f"http://127.0.0.1:{port}/lab/tree/board.ipynb?token={token}"


def serve_webui(work: Path, out: Path, env: dict):
    port = free_port()
    log = open(out / "webui.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from llmfactory.cli import main; sys.exit(main(sys.argv[1:]))",
                             "webui", "--port", str(port), "--output-dir", "saves/sft"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/voila/static/voila.js", proc)
    return proc, log, f"http://127.0.0.1:{port}/"


def run(kind: str, chromium: str, out: Path) -> str:
    from playwright.sync_api import sync_playwright
    work = Path(tempfile.mkdtemp(prefix=f"llmf-board-{kind}-"))
    sys.path.insert(0, str(ROOT))
    from llmfactory.demo import write_demo_data
    write_demo_data(work / "data")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               JUPYTER_CONFIG_DIR=str(work / ".jupyter"), JUPYTERLAB_SETTINGS_DIR=str(work / ".lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / ".lab-workspaces"))
    proc, log, url = (serve_lab if kind == "lab" else serve_webui)(work, out, env)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(120_000)
            page.goto(url)
            if kind == "lab":
                root = page.locator(".jp-OutputArea").first
                for attempt in range(4):  # a Shift+Enter sent before the kernel is connected is lost: run the cell again
                    try: page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=60_000)
                    except Exception: pass
                    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
                    page.keyboard.press("Shift+Enter")
                    try: root.locator("button.jupyter-button", has_text="Start").first.wait_for(timeout=60_000); break
                    except Exception:
                        if attempt == 3: raise
            else:
                root = page.locator("body")
            root.locator("button.jupyter-button", has_text="Start").first.wait_for(timeout=180_000)
            p = Panel(page, root, out, kind)
            try: drive(p, work)
            except Exception:
                p.shot("failed"); print(p.status()[-3000:]); raise
            browser.close()
        return f"{kind}: QLoRA sft (2 datasets, val split), stop + resume, DPO simpo, chat, predict, export passed"
    finally:
        try: os.killpg(proc.pid, 15); proc.wait(10)
        except Exception: pass
        log.close()
        shutil.rmtree(work, ignore_errors=True)


DOC_PAGES = {"07c_dpo.html": 1, "07e_ppo.html": 1, "tutorials/quick_start.html": 1, "15_board.html": 1}  # page -> images it must show


def check_docs(chromium: str, site: Path, out: Path) -> str:
    "Open each of DOC_PAGES from `site` and check its images and text outputs; a full-page screenshot of each"
    from playwright.sync_api import sync_playwright
    missing = [p for p in DOC_PAGES if not (site / p).exists()]
    if missing: raise RuntimeError(f"pages not rendered in {site}: {', '.join(missing)} (run pytest with LLMFACTORY_EXECUTED_DIR, then .ci/render_docs.py)")
    lines, bad = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        for name, min_imgs in DOC_PAGES.items():
            page.goto((site / name).as_uri()); page.wait_for_load_state("load")
            imgs, broken = page.evaluate("() => { const a = [...document.querySelectorAll('.jp-OutputArea-output img')];"
                                         " const ok = a.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length; return [ok, a.length - ok]; }")
            texts = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].filter(o => o.innerText.trim().length > 0).length")
            errors = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].filter(o => o.innerText.includes('Traceback (most recent call last)')).length")
            shot = out / f"docs-{name.replace('/', '-').removesuffix('.html')}.png"
            page.screenshot(path=str(shot), full_page=True)
            lines.append(f"{name}: {imgs} images drawn (at least {min_imgs} expected), {broken} broken, {texts} text outputs, {errors} errors -> {shot.name}")
            if imgs < min_imgs or broken or texts == 0 or errors: bad.append(name)
        browser.close()
    print("\n".join(lines))
    if bad: raise RuntimeError(f"pages without their results (images, text) or with errors: {', '.join(bad)}")
    return f"docs: {len(DOC_PAGES)} pages show their plots and outputs"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    args = [a for a in args if a != only and ("--site" not in sys.argv or a != sys.argv[sys.argv.index("--site") + 1])]
    out = Path(args[0] if args else ROOT / "test_artifacts").resolve()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try: import playwright.sync_api  # noqa: F401
    except ImportError: chromium = None
    if not chromium:
        print("skipped: the browser test needs Debian's chromium and the playwright package"); return 0
    out.mkdir(parents=True, exist_ok=True)
    if only == "docs":
        site = Path(sys.argv[sys.argv.index("--site") + 1] if "--site" in sys.argv else ROOT / "_site_local").resolve()
        print(check_docs(chromium, site, out)); return 0
    for kind in ([only] if only else ["webui", "lab"]):
        print(run(kind, chromium, out), flush=True)
    print(f"browser test passed; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
