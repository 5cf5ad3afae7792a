"""Where icm keeps what it downloads, assembles and caches: one root, three folders.

    $ICM_CACHE_DIR, else $XDG_CACHE_HOME/icm, else ~/.cache/icm
        responses.sqlite   the model-response cache (icm.backends.response_cache)
        models/            assembled default models (icm.backends.default_model)
        data/              datasets unpacked by `icm data fetch` (icm.data)

Datasets are read from --data-dir, else $ICM_DATA_DIR, else data/ above.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ICM_CACHE_DIR"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "icm"


def response_cache_path() -> Path:
    return cache_root() / "responses.sqlite"


def model_cache_dir() -> Path:
    return cache_root() / "models"


def data_cache_dir() -> Path:
    return cache_root() / "data"
