#!/usr/bin/env python3
"""The control panel in a real browser: JupyterLab headless on loopback, a notebook that shows `llmfactory.Board`,
Debian's Chromium driven by Playwright. Runs the notebook, clicks Start, waits until the loss plot shows and the
adapter is written, and saves a screenshot.

    python .ci/browser_test.py [ARTIFACT_DIR]   # default: test_artifacts/

Exits 0 with a note when Chromium or the playwright package is missing (install: apt-get install chromium;
pip install playwright — no browser download is needed, the Debian binary is used)."""
import json, os, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CELL = """from llmfactory.board import Board
board = Board(dataset_dir="data", output_dir="run")
board.set_values(max_steps=40, logging_steps=1, save_steps=100, max_samples=64, cutoff_len=128, learning_rate=1e-3)
board"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def wait_http(url: str, proc, timeout: float = 90):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f"JupyterLab exited with code {proc.returncode}: see jupyterlab.log")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "test_artifacts").resolve()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try: from playwright.sync_api import sync_playwright
    except ImportError: chromium = None
    if not chromium:
        print("skipped: the browser test needs Debian's chromium and the playwright package"); return 0
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmf-board-"))
    sys.path.insert(0, str(ROOT))
    from llmfactory.demo import write_demo_data
    write_demo_data(work / "data")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": CELL}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (work / "board.ipynb").write_text(json.dumps(nb), encoding="utf-8")

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               JUPYTER_CONFIG_DIR=str(work / ".jupyter"), JUPYTERLAB_SETTINGS_DIR=str(work / ".lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / ".lab-workspaces"))
    log = open(out / "jupyterlab.log", "w")
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--allow-root",
                            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", lab)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/board.ipynb?token={token}")
            page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus", state="attached")
            page.keyboard.press("Shift+Enter")
            start = page.locator("button.jupyter-button", has_text="Start")
            start.wait_for()
            start.click()
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea img')].some(i => i.naturalWidth > 0)")
            end = time.time() + 180
            while not (work / "run" / "adapter_model.safetensors").exists():
                if time.time() > end: raise RuntimeError("training did not finish: no adapter in run/")
                time.sleep(1)
            page.locator(".jp-OutputArea", has_text="checkpoints in").wait_for()
            time.sleep(2)  # the last poll redraws the plot
            page.screenshot(path=str(out / "board.png"), full_page=True)
            text = page.locator(".jp-OutputArea").first.inner_text()
            browser.close()
        assert "training done" in text, text[-2000:]
        print(f"browser test passed: loss plot shown, adapter written; screenshot {out / 'board.png'}")
        return 0
    finally:
        try: os.killpg(lab.pid, 15); lab.wait(10)
        except Exception: pass
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
