"""Row helpers shared by several testbeds, so that no testbed imports another:

- seed-independent splits and orders by content, so that neither a claim's split, its
  position nor its id can carry its gold label (stable_hash, in_test_split,
  content_order, hashed_order, shuffled_within_groups);
- the data files and CSV rows of the moral testbeds (data_root, Row, text_field;
  the files themselves: icm.data.data_dir.data_file).

Pairwise comparisons in both orders live in icm.testbeds.pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from icm.data.data_dir import resolve_data_dir
from icm.data.readers import Record
from icm.errors import DataError
from icm.testbeds.base import ClaimRecord, LoadOptions

# --------------------------------------------------------------------------- order


def stable_hash(*parts: str) -> int:
    """A seed-independent 64-bit hash (Python's hash() changes between processes)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def in_test_split(key: str, test_fraction: float, *, salt: str) -> bool:
    """A fixed split by content: the same question lands in the same split forever."""
    return stable_hash(salt, key) < test_fraction * 2**64


def content_order(items: Sequence[Any], key: Any, *, salt: str = "") -> list[Any]:
    """Items sorted by a hash of their content, so that neither their position nor an id
    built from it can carry the gold label (the paper files list true answers first)."""
    return sorted(items, key=lambda it: (stable_hash(salt, str(key(it))), str(key(it))))


def hashed_order(items: Sequence[Any], key: Callable[[Any], str], *, salt: str) -> list[Any]:
    """Items in a stable pseudo-random order: by sha256 of `<salt>/<key>`."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{salt}/{key(it)}".encode()).digest())


def shuffled_within_groups(claims: list[ClaimRecord], salt: str) -> list[ClaimRecord]:
    """Groups stay in file order, claims inside a group get a stable pseudo-random order
    (hashed_order by id).

    The source files often list the right answer first in its group (ETHICS virtue: the
    fitting trait is the first candidate for 82% of test sentences); the order must not
    carry that signal into batches or logs.
    """
    groups: dict[str, list[ClaimRecord]] = {}
    for c in claims:
        groups.setdefault(c.group, []).append(c)
    return [c for g in groups.values() for c in hashed_order(g, lambda c: c.id, salt=salt)]


# --------------------------------------------------------------------------- moral testbeds' files


def data_root(options: LoadOptions) -> Path | None:
    """DATA_DIR: --data-dir, ICM_DATA_DIR, or the `icm data fetch` cache."""
    return resolve_data_dir(options.data_dir)


Row = Record  # (1-based line where the record starts, cells by column)


def text_field(row: Row, name: str, path: Path) -> str:
    value = row[1][name].strip()
    if not value:
        raise DataError("empty", path=path, line=row[0], field=name)
    return value
