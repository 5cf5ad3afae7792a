"""Language-model backends. `open_backend` picks one from the run configuration."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from icm.backends.base import LabelScorer

if TYPE_CHECKING:
    from icm.config import RunConfig


@contextlib.contextmanager
def open_backend(cfg: RunConfig, label_words: tuple[str, str]) -> Iterator[LabelScorer]:
    from icm.errors import ConfigError

    raise ConfigError("language-model backends are not wired in yet; use --model synthetic")
    yield  # pragma: no cover
