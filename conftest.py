"""Run every notebook under nbs/ as a pytest test, the way `nbdev_test` runs them.

Cells marked `#| eval: false` or with a flag from `tst_flags` in settings.ini are skipped,
notebooks with `skip_exec: true` front matter are skipped, and a failing cell fails the test
with the notebook's own traceback. A cell that raises `unittest.SkipTest` (data beside the checkout is absent, say)
shows `SKIPPED: reason` as its output; the rest of the notebook still runs, and the test is reported as skipped
with that reason. With `LLMFACTORY_EXECUTED_DIR` set, each notebook is also written there with its outputs, for
`.ci/render_docs.py` and the docs build.
"""
import importlib.util, os, re
from pathlib import Path
from unittest import SkipTest

import pytest

ROOT = Path(__file__).parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _render_docs():
    "The .ci/render_docs.py module, which writes executed notebooks"
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / ".ci" / "render_docs.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def pytest_collect_file(parent, file_path):
    if file_path.suffix != ".ipynb" or any(p.startswith((".", "_")) for p in file_path.relative_to(ROOT).parts):
        return None
    if (file_path.parent / ".notest").exists():
        return None
    return NotebookFile.from_parent(parent, path=file_path)


class NotebookFile(pytest.File):
    def collect(self):
        yield NotebookItem.from_parent(self, name=self.path.stem)


class NotebookError(Exception):
    pass


class NotebookItem(pytest.Item):
    def runtest(self):
        from execnb.shell import CaptureShell
        from fastcore.xtras import working_directory
        from nbdev.config import get_config
        from nbdev.frontmatter import FrontmatterProc
        from nbdev.process import NBProcessor
        from fastcore.basics import str2bool

        flags = set(get_config().get("tst_flags", "").split())
        nb = NBProcessor(self.path, procs=FrontmatterProc, process=True).nb
        if str2bool(getattr(nb, "frontmatter_", {}).get("skip_exec", False)):
            pytest.skip("skip_exec")

        def no_eval(cell):
            if cell.cell_type != "code" or "nbdev_export(" in cell.source:
                return True
            directives = getattr(cell, "directives_", {}) or {}
            if directives.get("eval:", [""])[0].lower() == "false":
                return True
            return bool(flags & directives.keys())

        os.environ["IN_TEST"] = "1"
        shell, skips = CaptureShell(self.path), []
        try:
            with working_directory(self.path.parent):
                for cell in nb.cells:
                    if no_eval(cell): continue
                    cell.outputs = []  # no saved output survives into the executed copy
                    shell.cell(cell)
                    if isinstance(shell.exc, SkipTest):  # a visible skip: say why in the page, run the rest
                        skips.append(f"{self.path.name} cell {cell.idx_}: {shell.exc}")
                        for o in cell.get("outputs", []):  # the traceback IPython printed is not part of the page
                            if o["output_type"] == "stream": o["text"] = re.split(r"\S*-{20,}\S*\n\S*SkipTest", "".join(o["text"]))[0]
                        cell.outputs = [o for o in cell.get("outputs", []) if o["output_type"] != "error" and o.get("text", True)] + [
                            dict(output_type="stream", name="stdout", text=f"SKIPPED: {shell.exc}\n")]
                    elif shell.exc: raise shell.exc
        except Exception:
            raise NotebookError(shell.prettytb(fname=self.path)) from None
        finally:
            if os.environ.get("LLMFACTORY_EXECUTED_DIR"): _render_docs().save_executed(self.path, nb, os.environ["LLMFACTORY_EXECUTED_DIR"])
        if skips: pytest.skip("; ".join(skips))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, NotebookError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"notebook {self.path.name}"
