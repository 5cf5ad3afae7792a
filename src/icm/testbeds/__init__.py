"""The testbed registry: one module per testbed in this folder, found by name."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from icm.errors import ConfigError, did_you_mean
from icm.testbeds.base import (
    CLAIM_TEMPLATE,
    ClaimRecord,
    ClaimTable,
    LoadOptions,
    RelationRecord,
    Testbed,
)

__all__ = [
    "CLAIM_TEMPLATE",
    "ClaimRecord",
    "ClaimTable",
    "LoadOptions",
    "RelationRecord",
    "Testbed",
    "canonical_testbed_name",
    "get_testbed",
    "list_testbeds",
    "register_testbed",
]

_REGISTRY: dict[str, type[Testbed]] = {}
_LOADED = False

T = TypeVar("T", bound=type[Testbed])


def register_testbed(cls: T) -> T:
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise RuntimeError(f"testbed '{name}' is registered twice")
    _REGISTRY[name] = cls
    return cls


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _LOADED = True


def list_testbeds() -> list[type[Testbed]]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


# The original code's --testbed spellings (src/experiments/ICM.py) for the testbeds it has.
ORIGINAL_NAMES = {
    "truthfulQA": "truthfulqa",
    "truthfulQA-preference": "truthfulqa-preference",
    "gsm8k": "gsm8k",
    "alpaca": "alpaca",
}


def _lookup_key(name: str) -> str:
    """Names match whatever their case and '-'/'_' (truthfulQA, truthfulqa_preference)."""
    return name.strip().lower().replace("_", "-")


def canonical_testbed_name(name: str) -> str:
    """The registered name for `name` (case-insensitive; the original code's spellings
    work); an unknown name raises ConfigError with the closest known names."""
    _load_all()
    by_key = {_lookup_key(k): k for k in _REGISTRY}
    by_key.update({_lookup_key(k): v for k, v in ORIGINAL_NAMES.items() if v in _REGISTRY})
    found = by_key.get(_lookup_key(name))
    if found is None:
        hint = did_you_mean(_lookup_key(name), sorted(by_key))
        raise ConfigError(
            f"unknown testbed '{name}'.{hint} "
            f"Known: {', '.join(sorted(_REGISTRY))}; or give a path to a .jsonl/.csv file."
        )
    return found


def get_testbed(name: str) -> Testbed:
    return _REGISTRY[canonical_testbed_name(name)]()
