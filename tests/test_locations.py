"""One root for everything icm caches: $ICM_CACHE_DIR holds responses, models and data."""

from __future__ import annotations

from pathlib import Path

from icm.backends.default_model import cache_dir as model_dir
from icm.backends.response_cache import default_cache_path
from icm.data.data_dir import default_cache_dir, resolve_data_dir
from icm.locations import cache_root


def test_icm_cache_dir_is_the_root_of_all_three(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ICM_DATA_DIR", raising=False)
    assert cache_root() == tmp_path
    assert default_cache_path() == tmp_path / "responses.sqlite"
    assert model_dir() == tmp_path / "models"
    # `icm data fetch` unpacks under data/, not at the cache root beside the other two.
    assert default_cache_dir() == tmp_path / "data"
    assert resolve_data_dir(None) is None  # no data fetched yet
    (tmp_path / "data").mkdir()
    assert resolve_data_dir(None) == tmp_path / "data"


def test_without_icm_cache_dir_xdg_then_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ICM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "icm" / "data"
    assert default_cache_path() == tmp_path / "xdg" / "icm" / "responses.sqlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_dir() == tmp_path / "home" / ".cache" / "icm" / "models"
