"""Resolve a --testbed value: a registered name, or a path to the user's own claims file."""

from __future__ import annotations

from pathlib import Path

from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.base import ClaimTable


def is_claims_file(value: str) -> bool:
    return value.endswith((".jsonl", ".csv", ".json")) or "/" in value or Path(value).is_file()


def load_table(testbed: str, split: str, options: LoadOptions) -> ClaimTable:
    if is_claims_file(testbed):
        from icm.testbeds.custom import load_claims_file

        return load_claims_file(Path(testbed), options)
    return get_testbed(testbed).load(split, options)
