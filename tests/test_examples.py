"""Every example runs top to bottom (they are the documentation)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_api_with_the_stand_in_scorer(capsys) -> None:
    result = load("notebook_api").run("synthetic")
    assert len(result.records()) == 12
    assert result.agreement_with_gold() is not None
    # It ends with the summary that says whether the labelling is usable.
    assert result.summary is not None
    assert "summary: 12/12 labeled" in capsys.readouterr().out


@pytest.mark.model
def test_notebook_api_with_the_embedded_model(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path))
    result = load("notebook_api").run("embedded")
    records = result.records()
    assert len(records) == 12
    assert sum(r["label"] is not None for r in records) >= 6
    assert all(isinstance(r["score"], float) for r in records)
