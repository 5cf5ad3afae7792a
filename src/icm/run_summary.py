"""What a finished labelling looks like, whether it is degenerate, and whether it beat
asking the model directly.

A search can end at an optimum of U that is useless: every claim labelled the same, or
most consistency constraints broken (a small model whose mutual predictability outweighs
consistency). Such a run still "completes", so every run ends with this summary, in its
log, on stderr and in metrics.json, and says in words what is wrong and which flag may
help. Those checks read only the labels and the claims' structure.

A consistent, balanced labelling can still be worse than the model's zero-shot answers.
Given the zero-shot gaps (icm.zero_shot), the summary also puts ICM beside the zero-shot
reference: their agreement, and where the claims have gold labels, ICM, zero-shot, the
majority class and chance, with a warning (and a verdict) when ICM does not beat them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from icm import _icm_core as core
from icm.config import balanced_alpha
from icm.testbeds.base import ClaimTable
from icm.zero_shot import ZeroShotComparison, compare

if TYPE_CHECKING:
    from icm.config import RunConfig
    from icm.search import IcmResult


@dataclass
class RunSummary:
    n_claims: int
    n_labeled: int
    n_true: int
    n_false: int
    constraints_total: int  # pairwise relations + group constraints, over the whole table
    constraints_violated: int
    mp_per_batch: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # ICM beside the zero-shot reference; None when no zero-shot pass was made.
    zero_shot: ZeroShotComparison | None = None
    # Answers whose label words were missing from the top logprobs (FloorWatch.line).
    floored: str | None = None

    VERDICT_KINDS = ("degenerate", "inconsistent", "below-zero-shot", "below-baseline")

    @property
    def verdict(self) -> str:
        """ok, or the '+'-joined problems: degenerate (one label), inconsistent (most
        constraints broken), below-zero-shot (gold says ICM does not beat the model's
        zero-shot labels), below-baseline (nor the majority class, or chance)."""
        kinds = [w.split(":", 1)[0] for w in self.warnings]
        bad = [k for k in self.VERDICT_KINDS if k in kinds]
        return "+".join(bad) if bad else "ok"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["zero_shot"] = self.zero_shot.as_dict() if self.zero_shot is not None else None
        out["n_unlabeled"] = self.n_claims - self.n_labeled
        out["true_fraction"] = self.n_true / self.n_labeled if self.n_labeled else None
        out["verdict"] = self.verdict
        return out

    def lines(self) -> list[str]:
        """The human-readable summary: one line of figures, then one line per warning."""
        share = f" ({100 * self.n_true / self.n_labeled:.0f}% True)" if self.n_labeled else ""
        mp = ", ".join(f"{m:.3f}" for m in self.mp_per_batch)
        head = (
            f"summary: {self.n_labeled}/{self.n_claims} labeled: {self.n_true} True, "
            f"{self.n_false} False{share}; constraints violated: "
            f"{self.constraints_violated}/{self.constraints_total}; MP per batch: {mp or '-'}"
        )
        reference = self.zero_shot.lines() if self.zero_shot is not None else []
        floored = [self.floored] if self.floored else []
        return [head, *reference, *floored, *(f"WARNING: {w}" for w in self.warnings)]


def summarize(
    table: ClaimTable,
    labels: dict[str, bool | None],
    *,
    mp_per_batch: list[float] | None = None,
    alpha: float | None = None,
    n_batch: int | None = None,
    mp_objective: str = "mean-gap",
    zero_shot_gaps: dict[str, float] | None = None,
    floored: str | None = None,
) -> RunSummary:
    """Summarise final labels over the whole table. `alpha` and `n_batch` (the claims per
    batch) let the warnings name the alpha that keeps the paper's balance;
    `zero_shot_gaps` (every claim's gap scored alone) adds the zero-shot comparison."""
    to_core = {True: core.Label.TRUE, False: core.Label.FALSE, None: core.Label.UNSET}
    values = [labels.get(c.id) for c in table.claims]
    claim_set = table.to_claim_set()
    violated = core.count_inconsistencies(claim_set, [to_core[v] for v in values])
    s = RunSummary(
        n_claims=len(values),
        n_labeled=sum(v is not None for v in values),
        n_true=sum(v is True for v in values),
        n_false=sum(v is False for v in values),
        constraints_total=claim_set.n_constraints,
        constraints_violated=int(violated),
        mp_per_batch=list(mp_per_batch or []),
    )
    s.warnings = _warnings(s, alpha, n_batch, mp_objective)
    if zero_shot_gaps is not None:
        s.zero_shot = compare(table, labels, zero_shot_gaps)
        s.warnings += s.zero_shot.warnings
    s.floored = floored
    return s


def summarize_run(
    cfg: RunConfig,
    table: ClaimTable,
    result: IcmResult,
    n_batch: int,
    *,
    zero_shot_gaps: dict[str, float] | None = None,
    floored: str | None = None,
) -> RunSummary:
    """The summary of a search's result under the run configuration that produced it."""
    return summarize(
        table,
        result.labels,
        mp_per_batch=[b.mp for b in result.batches],
        alpha=cfg.resolved_alpha(n_batch),
        n_batch=n_batch,
        mp_objective=cfg.mp_objective,
        zero_shot_gaps=zero_shot_gaps,
        floored=floored,
    )


def _remedy(alpha: float | None, n_batch: int | None, mp_objective: str) -> str:
    if alpha is not None and n_batch and mp_objective == "mean-gap":
        target = balanced_alpha(n_batch)
        if alpha > 1.5 * target:
            return (
                f"alpha {alpha:g} on batches of {n_batch} claims lets mutual predictability "
                f"outweigh consistency; --alpha {target:g} keeps the paper's balance"
            )
    return (
        "the model may be too weak for this task (the paper used 8B-70B models); try a "
        "larger model (--base-url), more iterations (--K), or other seeds (--seed)"
    )


def _warnings(
    s: RunSummary, alpha: float | None, n_batch: int | None, mp_objective: str
) -> list[str]:
    out: list[str] = []
    remedy = _remedy(alpha, n_batch, mp_objective)
    if s.n_labeled >= 2 and (s.n_true == 0 or s.n_false == 0):
        word = "True" if s.n_false == 0 else "False"
        out.append(
            f"degenerate: all {s.n_labeled} labels are {word}; the labelling carries no "
            f"information about the claims ({remedy})"
        )
    if s.constraints_total and 2 * s.constraints_violated > s.constraints_total:
        why = "" if out else f" ({remedy})"  # the remedy is said once
        out.append(
            f"inconsistent: {s.constraints_violated} of {s.constraints_total} consistency "
            f"constraints are violated, most of them{why}"
        )
    elif s.constraints_violated:
        out.append(f"some constraints violated: {s.constraints_violated} of {s.constraints_total}")
    if s.n_labeled < s.n_claims:
        out.append(
            f"unlabeled: {s.n_claims - s.n_labeled} of {s.n_claims} claims have no label "
            "(the search never reached them, or labelling them lowered U; more --K helps)"
        )
    return out
