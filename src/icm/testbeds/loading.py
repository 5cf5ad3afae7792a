"""Resolve a --testbed value: a registered name, or a path to the user's own claims file."""

from __future__ import annotations

from pathlib import Path

from icm.errors import ConfigError
from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.base import ClaimTable


def is_claims_file(value: str) -> bool:
    return value.endswith((".jsonl", ".csv", ".json")) or "/" in value or Path(value).is_file()


def check_claims_file_split(testbed: str, split: str, flag: str = "--split") -> None:
    """A claims file is one split ("all"): another split asked of it would be ignored, and the
    whole file labelled or shown. "train" (the default) is taken as the whole file too."""
    if is_claims_file(testbed) and split not in ("train", "all"):
        raise ConfigError(
            f"{flag} {split}: a claims file ({testbed}) has no splits, it is one (all); leave "
            f"out {flag} (`icm eval --test-fraction F` holds out part of it)"
        )


def load_table(testbed: str, split: str, options: LoadOptions) -> ClaimTable:
    if is_claims_file(testbed):
        from icm.testbeds.custom import load_claims_file

        return load_claims_file(Path(testbed), options)
    return get_testbed(testbed).load(split, options)
