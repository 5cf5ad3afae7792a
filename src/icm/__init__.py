"""icm: Internal Coherence Maximization (Wen et al., 2025) with a C++ search core.

Notebook entry points (see examples/ and docs/):

    from icm import get_testbed, run_icm, SyntheticScorer
"""

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

__version__ = "0.1.0"

__all__ = [
    "Claim",
    "ClaimSet",
    "Label",
    "LabelScore",
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
    "make_batches",
    "search_params_code",
    "search_params_paper",
]
