"""Helpers shared by several testbeds: seed-independent splits and orders by content, so
that neither a claim's split, its position nor its id can carry its gold label."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


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


def listing_order(
    pairs: Sequence[tuple[str, Any]], file_order: Sequence[Any], consistency: str
) -> list[tuple[str, Any]]:
    """The (id, row) pairs of one consistency group in the order the table lists them.
    Ids come from content_order in every mode. The default keeps that content order, so
    that a claim's position cannot carry its label (several paper files list the true
    claim first in every group). `--consistency paper` lists the rows in the file's order,
    as the original code does (its batches and demonstrations keep the file order within
    a group); that mode already derives its relations from gold labels."""
    if consistency != "paper":
        return list(pairs)
    position = {id(row): i for i, row in enumerate(file_order)}
    return sorted(pairs, key=lambda pair: position[id(pair[1])])
