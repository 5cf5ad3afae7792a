"""An advisory lock between processes, on a sidecar file.

icm's caches (the assembled default model, its Hugging Face conversion, the response
cache) are shared by every icm process of a user; whoever creates or repairs one holds this
lock, so that no process sees another's half-written file. The lock goes with the process:
a killed icm never leaves it held.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


class LockHeld(Exception):
    """`exclusive_lock(..., wait=False)` found the lock held; `owner` is what the holder
    wrote into the lock file (its process id), or ''."""

    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(f"{path}: locked by {owner or 'another process'}")
        self.path = path
        self.owner = owner


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created, with its folder, if missing). With
    wait=False, raise LockHeld at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: writers still rename finished files into place
            yield
            return
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            raise LockHeld(path, f.read().strip()) from None
        if not wait:  # say who holds it, for the message of whoever is refused
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
        yield  # closing the file releases the lock
