"""Every config under examples/ is read and checked as its command reads it, before anything loads."""
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if "accelerate" not in p.parts)  # accelerate's own files are not llmfactory configs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_config(path, monkeypatch):
    from llmfactory.evaluation import get_eval_args
    from llmfactory.hparams import ConfigError, get_infer_args
    from llmfactory.tuner import preflight
    monkeypatch.chdir(ROOT)  # the examples name paths relative to the project folder
    cfg = yaml.safe_load(path.read_text())
    try:
        if "stage" in cfg: preflight(str(path))
        elif "task" in cfg: get_eval_args(str(path))
        else: get_infer_args(str(path))
    except ConfigError as e:
        if "pip install" in str(e): pytest.skip(f"needs an optional package: {e}")
        raise
