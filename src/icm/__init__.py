"""icm: Internal Coherence Maximization (Wen et al., 2025) with a C++ search core.

Notebook entry points (see examples/ and docs/):

    from icm import LoadOptions, SyntheticScorer, get_testbed, run_icm

    table = get_testbed("capitals").load("train", LoadOptions(size=16))
    result = run_icm(table, scorer, params, batch_size=16)  # result.labels: id -> bool

`get_testbed`, `LoadOptions` and `run_icm` are imported on first use, so that
`import icm` stays cheap and the core's types load without the Python layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icm._icm_core import (
    Claim,
    ClaimSet,
    Label,
    LabelScore,
    Relation,
    RelationKind,
    Scorer,
    ScoreRequest,
    Search,
    SearchParams,
    SearchState,
    StepOutcome,
    SyntheticScorer,
    SyntheticScorerParams,
    TraceRow,
    make_batches,
    search_params_code,
    search_params_paper,
)

if TYPE_CHECKING:
    from icm.search import run_icm
    from icm.testbeds import LoadOptions, get_testbed

__version__ = "0.1.0"

# The Python-layer entry points, by the module that defines each.
_LAZY = {
    "get_testbed": "icm.testbeds",
    "LoadOptions": "icm.testbeds",
    "run_icm": "icm.search",
}


if not TYPE_CHECKING:  # mypy sees the imports above; a module __getattr__ would make it
    # read every `from icm import x` (the core included) as Any.

    def __getattr__(name: str) -> Any:
        if name in _LAZY:
            import importlib

            return getattr(importlib.import_module(_LAZY[name]), name)
        raise AttributeError(f"module 'icm' has no attribute '{name}'")


__all__ = [
    "Claim",
    "ClaimSet",
    "Label",
    "LabelScore",
    "LoadOptions",
    "Relation",
    "RelationKind",
    "ScoreRequest",
    "Scorer",
    "Search",
    "SearchParams",
    "SearchState",
    "StepOutcome",
    "SyntheticScorer",
    "SyntheticScorerParams",
    "TraceRow",
    "__version__",
    "get_testbed",
    "make_batches",
    "run_icm",
    "search_params_code",
    "search_params_paper",
]
