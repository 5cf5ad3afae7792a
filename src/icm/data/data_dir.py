"""Where the external data files are: a data directory (`--data-dir`, else $ICM_DATA_DIR,
else the `icm data fetch` cache if it exists) holding the files under the same relative
paths as ../shared/data/ (e.g. `truthfulqa/TruthfulQA.csv`). The cache root itself is
icm.locations'."""

from __future__ import annotations

import os
from pathlib import Path

from icm.errors import DataError
from icm.locations import data_cache_dir

DATA_DIR_ENV = "ICM_DATA_DIR"


def default_cache_dir() -> Path:
    """Where `icm data fetch` unpacks datasets ($ICM_CACHE_DIR/data, see icm.locations)."""
    return data_cache_dir()


def resolve_data_dir(data_dir: Path | str | None) -> Path | None:
    """The data directory to read: the explicit one, $ICM_DATA_DIR, or the fetch cache."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    cache = default_cache_dir()
    return cache if cache.is_dir() else None


def not_a_folder(root: Path) -> str:
    """Why `root`, which is not a directory, cannot be the data directory."""
    return "is a file, not a folder" if root.exists() else "not found"


def dataset_of(relpath: str) -> str:
    """The `icm data fetch` name that provides a relative path (its first folder)."""
    return relpath.split("/", 1)[0]


def data_file(data_dir: Path | str | None, relpath: str, *, hint: str = "") -> Path:
    """The path of `relpath` under the data directory, or a DataError saying where it was
    expected and how to get it (`hint`, else the `icm data fetch` command)."""
    root = resolve_data_dir(data_dir)
    fetch = f"run `icm data fetch {dataset_of(relpath)}`"
    how = f"{fetch} ({hint})" if hint else fetch
    if root is None:
        raise DataError(
            f"not found: no data directory for {relpath}; pass --data-dir DIR (or set "
            f"{DATA_DIR_ENV}) to a folder that holds it, or {how}"
        )
    if not root.is_dir():
        raise DataError(
            f"data directory {not_a_folder(root)}; pass --data-dir DIR (or set "
            f"{DATA_DIR_ENV}) to an existing folder, or {how}",
            path=root,
        )
    path = root / relpath
    if not path.is_file():
        raise DataError(f"not found: put {relpath} under {root}, or {how}", path=path)
    return path


def has_data_file(data_dir: Path | str | None, relpath: str) -> bool:
    root = resolve_data_dir(data_dir)
    return root is not None and (root / relpath).is_file()
