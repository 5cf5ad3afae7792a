"""An advisory lock between processes, on a sidecar file.

icm's caches (the assembled default model, its Hugging Face conversion, the response
cache) are shared by every icm process of a user; whoever creates or repairs one holds this
lock, so that no process sees another's half-written file. The lock goes with the process:
a killed icm never leaves it held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created, with its folder, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: writers still rename finished files into place
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock
