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


def get_testbed(name: str) -> Testbed:
    _load_all()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown testbed '{name}'.{did_you_mean(name, sorted(_REGISTRY))} "
            f"Known: {', '.join(sorted(_REGISTRY))}; or give a path to a .jsonl/.csv file."
        )
    return _REGISTRY[name]()
