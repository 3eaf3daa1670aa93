"""Checks on the package as installed, outside the notebooks."""
import subprocess
import sys


def test_import_does_not_pull_nbdev():
    code = "import sys, llmfactory, llmfactory.cli, llmfactory.tuner; print('nbdev' in sys.modules, 'execnb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_console_script_version():
    import shutil
    import llmfactory
    exe = shutil.which("llmfactory")
    assert exe, "the llmfactory console script is not installed (pip install -e .)"
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == llmfactory.__version__
