"""Test tiers. Every test that needs more than this checkout and the CPU carries a marker
(pyproject.toml lists them):

    model     starts the embedded llama.cpp server on the packaged model
    finetune  trains or loads a model with torch (the 'finetune' extra)
    lint      ruff, clang-format, mypy
    slow      a minute or more of CPU without a model (the C++ unit tests' own build,
              fuzzing, repeated kills and resumes, fault injection)

Every other test is marked `fast` here, so `pytest -m fast -n 2` runs the tier that needs
no model (about 4 minutes on 2 cores; its tests are independent, so they also run in
pytest-xdist's workers). A test in that tier that starts the embedded server in
the test process anyway fails at once, naming the marker it lacks, instead of quietly
taking minutes (a server started by an `icm` child process shows in --durations).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

TIER_MARKERS = ("model", "finetune", "lint", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in TIER_MARKERS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True, scope="session")
def _model_guard() -> Iterator[None]:
    """Make EmbeddedServer.start refuse to run outside tests marked `model` (see
    pytest_runtest_setup: fixtures of any scope are set up inside a test's setup)."""
    from icm.backends import embedded

    start = embedded.EmbeddedServer.start

    def guarded_start(self: Any) -> None:
        if not _state["model_allowed"]:
            raise RuntimeError(
                f"{_state['test']} starts the embedded llama.cpp server but is not marked "
                "@pytest.mark.model (tests/conftest.py)"
            )
        start(self)

    embedded.EmbeddedServer.start = guarded_start  # type: ignore[method-assign]
    yield
    embedded.EmbeddedServer.start = start  # type: ignore[method-assign]


_state: dict[str, Any] = {"model_allowed": True, "test": ""}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _state["model_allowed"] = item.get_closest_marker("model") is not None
    _state["test"] = item.nodeid
