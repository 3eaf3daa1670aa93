"""Run every notebook under nbs/ as a pytest test, the way `nbdev_test` runs them.

Cells marked `#| eval: false` or with a flag from `tst_flags` in settings.ini are skipped,
notebooks with `skip_exec: true` front matter are skipped, and a failing cell fails the test
with the notebook's own traceback.
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
        shell = CaptureShell(self.path)
        try:
            with working_directory(self.path.parent):
                shell.run_all(nb, exc_stop=True, preproc=no_eval)
        except Exception:
            raise NotebookError(shell.prettytb(fname=self.path)) from None

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, NotebookError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"notebook {self.path.name}"
