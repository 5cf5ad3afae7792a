"""The zero-shot reference: what the base model says of each claim on its own.

ICM's claim is that its labels beat asking the model directly. So every run also scores
each claim alone (its prompt with no demonstrations: one request per claim, through the
response cache) and labels the claims by the rule their consistency structure implies:

- a set of claims of which exactly one is true (an `exactly_one_true` group: at least one
  true plus pairwise at most one; or an `opposite` pair): the claim with the largest gap
  log P(True) - log P(False) is True, the others False (group argmax);
- a set of which at most one is true (pairwise `at_most_one_true` without "at least
  one"): only its largest gap is a candidate for True, the others are False;
- every other claim, and those candidates: a threshold on the gap. Two thresholds are
  reported: 0 (the sign of the gap: the model's own answer) and the one that gives as many
  True labels as ICM gave those claims (the model's ranking at ICM's label balance, so
  that a model biased toward one word is not judged by its bias). The second is the
  reference a run is compared with; the first is shown beside it.

`compare` then puts ICM's labels beside the zero-shot labels: their agreement always, and
where gold labels exist, per claim and per consistency group, ICM, zero-shot, the majority
class and chance side by side, with the claims or groups on which ICM and zero-shot differ
(an exact two-sided sign test over them). Gold labels are read here for reporting only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from icm import _icm_core as core
from icm.testbeds.base import ClaimTable

# The first requests of the pass go out alone, so that a scorer whose answers are all
# floored (icm.backends.base.FloorWatch) stops the run after seconds, not after the pass.
FIRST_REQUESTS = 16
CHUNK_REQUESTS = 256

# Groups larger than this are not enumerated for their number of consistent labellings
# (chance is then 2^-n, as if unconstrained).
MAX_ENUMERATED_GROUP = 12


def zero_shot_gaps(scorer: core.Scorer, table: ClaimTable) -> dict[str, float]:
    """Every claim's gap log P(True) - log P(False) with its prompt alone (no
    demonstrations): one request per claim, in table order, through `scorer` (and so
    through the response cache a run's scorer carries)."""
    claim_set = table.to_claim_set()
    reads_text = scorer.reads_prompt_text()
    requests = []
    for i in range(len(table)):
        r = core.ScoreRequest()
        r.target = i
        if reads_text:
            r.prompt = core.render_prompt(claim_set, r)
        requests.append(r)
    chunks = [requests[:FIRST_REQUESTS]] + [
        requests[i : i + CHUNK_REQUESTS]
        for i in range(FIRST_REQUESTS, len(requests), CHUNK_REQUESTS)
    ]
    gaps: list[float] = []
    for chunk in chunks:
        if chunk:
            gaps += [s.gap for s in scorer.score(chunk)]
    return {c.id: g for c, g in zip(table.claims, gaps, strict=True)}


@dataclass(frozen=True)
class ExclusiveSet:
    """Claims of which at most one is true; `exactly_one`: and at least one."""

    members: tuple[str, ...]
    exactly_one: bool


def exclusive_sets(table: ClaimTable) -> list[ExclusiveSet]:
    """The sets of mutually exclusive claims the table's relations make, each claim in at
    most one set: exactly-one groups first, then `opposite` pairs, then cliques of
    `at_most_one_true` pairs (connected claims that are all pairwise exclusive)."""
    exclusive = {"at_most_one_true", "opposite"}
    pairs = {frozenset((r.a, r.b)) for r in table.relations if r.kind in exclusive}

    def all_exclusive(members: Sequence[str]) -> bool:
        return all(frozenset((a, b)) in pairs for a, b in itertools.combinations(members, 2))

    taken: set[str] = set()
    out: list[ExclusiveSet] = []

    def add(members: Sequence[str], exactly_one: bool) -> None:
        if len(members) >= 2 and not taken.intersection(members):
            out.append(ExclusiveSet(tuple(members), exactly_one))
            taken.update(members)

    for g in table.group_constraints:
        if g.kind == "at_least_one_true" and all_exclusive(g.members):
            add(g.members, True)
    for r in table.relations:
        if r.kind == "opposite":
            add((r.a, r.b), True)
    # Connected components of the remaining at-most-one pairs, kept where they are cliques.
    order = {c.id: i for i, c in enumerate(table.claims)}
    neighbours: dict[str, set[str]] = {}
    for r in table.relations:
        if r.kind == "at_most_one_true" and r.a not in taken and r.b not in taken:
            neighbours.setdefault(r.a, set()).add(r.b)
            neighbours.setdefault(r.b, set()).add(r.a)
    seen: set[str] = set()
    for start in sorted(neighbours, key=order.__getitem__):
        if start in seen:
            continue
        component, stack = [], [start]
        seen.add(start)
        while stack:
            node = stack.pop()
            component.append(node)
            for other in neighbours[node] - seen:
                seen.add(other)
                stack.append(other)
        component.sort(key=order.__getitem__)
        if all_exclusive(component):
            add(component, False)
    return out


@dataclass
class ZeroShotLabels:
    """The zero-shot labelling of a table, and how it was made."""

    labels: dict[str, bool]
    n_exactly_one: int  # exclusive sets labelled by argmax
    n_at_most_one: int
    n_thresholded: int  # claims (or at-most-one candidates) labelled by the threshold
    threshold: float | None  # None when no claim is thresholded
    matched: bool = False  # the threshold gives ICM's label balance (else it is 0)

    def rule(self) -> str:
        parts = []
        if self.n_exactly_one:
            parts.append(f"group argmax over {self.n_exactly_one} exactly-one set(s)")
        if self.n_at_most_one:
            parts.append(f"argmax candidates of {self.n_at_most_one} at-most-one set(s)")
        if self.n_thresholded:
            where = (
                f"at ICM's label balance (gap >= {self.threshold:.3g})"
                if self.matched
                else "0 (the sign of the gap)"
            )
            parts.append(f"a threshold {where} on {self.n_thresholded} claim(s)")
        return "; ".join(parts) or "no claims"


def zero_shot_labels(
    table: ClaimTable,
    gaps: Mapping[str, float],
    *,
    match_labels: Mapping[str, bool | None] | None = None,
) -> ZeroShotLabels:
    """Label each claim from its zero-shot gap by the structure's rule (module docstring).
    Without `match_labels` the threshold is 0; with them it is set so that the thresholded
    claims get as many True labels as `match_labels` gives them (ICM's label balance)."""
    sets = exclusive_sets(table)
    labels: dict[str, bool] = {}
    candidates: list[tuple[float, int, list[str]]] = []  # (gap, table order, claims it covers)
    order = {c.id: i for i, c in enumerate(table.claims)}
    for s in sets:
        best = max(s.members, key=lambda m: (gaps[m], -order[m]))  # ties: the earlier claim
        for m in s.members:
            labels[m] = False
        if s.exactly_one:
            labels[best] = True
        else:
            candidates.append((gaps[best], order[best], list(s.members)))
    for c in table.claims:
        if c.id not in labels:
            candidates.append((gaps[c.id], order[c.id], [c.id]))
    threshold: float | None = None
    if candidates:
        ranked = sorted(candidates, key=lambda x: (-x[0], x[1]))
        if match_labels is None:
            threshold = 0.0
            n_true = sum(gap > 0 for gap, _, _ in ranked)
        else:
            n_true = sum(any(match_labels.get(m) is True for m in cover) for _, _, cover in ranked)
            threshold = ranked[n_true - 1][0] if n_true else math.inf
        for rank, (_, i, cover) in enumerate(ranked):
            lead = table.claims[i].id
            for m in cover:
                labels[m] = rank < n_true and m == lead
    return ZeroShotLabels(
        labels=labels,
        n_exactly_one=sum(s.exactly_one for s in sets),
        n_at_most_one=sum(not s.exactly_one for s in sets),
        n_thresholded=len(candidates),
        threshold=threshold,
        matched=match_labels is not None,
    )


def consistent_labellings(table: ClaimTable, members: Sequence[str]) -> int | None:
    """How many labellings of `members` satisfy the relations and group constraints among
    them; None for groups too large to enumerate."""
    if len(members) > MAX_ENUMERATED_GROUP:
        return None
    inside = set(members)
    relations = [r for r in table.relations if r.a in inside and r.b in inside]
    groups = [g for g in table.group_constraints if inside.issuperset(g.members)]
    index = {m: i for i, m in enumerate(members)}
    holds = {
        "same": lambda a, b: a == b,
        "opposite": lambda a, b: a != b,
        "at_most_one_true": lambda a, b: not (a and b),
    }
    n = 0
    for values in itertools.product((True, False), repeat=len(members)):
        if all(holds[r.kind](values[index[r.a]], values[index[r.b]]) for r in relations) and all(
            any(values[index[m]] for m in g.members) for g in groups
        ):
            n += 1
    return n


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test: the probability, under a fair coin over the
    `wins + losses` discordant items, of a split at least this uneven."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass
class Tally:
    """Right answers out of `n` for ICM, zero-shot (matched threshold and sign), the
    majority class and chance (an expectation), over claims or over groups."""

    unit: str  # "claim" | "group"
    n: int
    icm: int
    zero_shot: int
    zero_shot_sign: int
    majority: int
    chance: float
    icm_only: int  # right under ICM, wrong under zero-shot
    zero_shot_only: int
    thresholded: bool = True  # some claims were labelled by a threshold (sign differs)

    @property
    def p_value(self) -> float:
        return sign_test_p(self.icm_only, self.zero_shot_only)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "icm": self.icm,
            "zero_shot": self.zero_shot,
            "zero_shot_sign": self.zero_shot_sign,
            "majority_class": self.majority,
            "chance": round(self.chance, 4),
            "icm_right_zero_shot_wrong": self.icm_only,
            "zero_shot_right_icm_wrong": self.zero_shot_only,
            "sign_test_p": round(self.p_value, 4),
        }

    def line(self) -> str:
        def share(k: float) -> str:
            shown = f"{k:.1f}" if isinstance(k, float) and not k.is_integer() else f"{k:g}"
            return f"{shown}/{self.n} ({100 * k / self.n:.1f}%)"

        sign = f" (sign of the gap: {share(self.zero_shot_sign)})" if self.thresholded else ""
        return (
            f"{self.unit}s right: ICM {share(self.icm)} | zero-shot {share(self.zero_shot)}"
            f"{sign} | majority class {share(self.majority)} | chance {share(self.chance)}"
        )


@dataclass
class ZeroShotComparison:
    """ICM's labels beside the zero-shot reference (and gold, where it exists)."""

    rule: str
    n_claims: int
    agree_claims: int
    n_groups: int  # groups of two or more claims
    agree_groups: int
    zero_shot_inconsistencies: int
    claims: Tally | None = None  # None without gold labels
    groups: Tally | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def decisive(self) -> Tally | None:
        """The unit the verdict is read on: groups where the table has them, else claims."""
        return self.groups if self.groups is not None and self.groups.n else self.claims

    @property
    def beats_zero_shot(self) -> bool | None:
        d = self.decisive
        return None if d is None else d.icm > d.zero_shot

    def lines(self) -> list[str]:
        groups = f", {self.agree_groups}/{self.n_groups} groups" if self.n_groups else ""
        out = [
            f"zero-shot reference (each claim scored alone; {self.rule}): agrees with ICM on "
            f"{self.agree_claims}/{self.n_claims} claims{groups}; violates "
            f"{self.zero_shot_inconsistencies} constraint(s)",
        ]
        if self.decisive is None:
            out.append(
                "no gold labels: only the agreement of ICM and zero-shot can be shown, not "
                "which of them is right"
            )
            return out
        for tally in (self.groups, self.claims):
            if tally is not None and tally.n:
                out.append(f"against gold (monitoring only), {tally.line()}")
        d = self.decisive
        if self.beats_zero_shot:
            out.append(
                f"ICM vs zero-shot: ICM beats it, {d.icm} vs {d.zero_shot} of {d.n} "
                f"{d.unit}s right; they differ on {d.icm_only + d.zero_shot_only}: ICM right "
                f"on {d.icm_only}, zero-shot on {d.zero_shot_only} (sign test p = {d.p_value:.3g})"
            )
        elif d.icm == d.zero_shot == d.n:
            out.append(f"ICM vs zero-shot: both get all {d.n} {d.unit}s right")
        return out

    def as_dict(self) -> dict[str, Any]:
        d = self.decisive
        return {
            "rule": self.rule,
            "n_claims": self.n_claims,
            "agree_claims": self.agree_claims,
            "n_groups": self.n_groups,
            "agree_groups": self.agree_groups,
            "zero_shot_inconsistencies": self.zero_shot_inconsistencies,
            "per_claim": self.claims.as_dict() if self.claims else None,
            "per_group": self.groups.as_dict() if self.groups else None,
            "decided_on": d.unit if d else None,
            "beats_zero_shot": self.beats_zero_shot,
        }


def _tally(
    unit: str,
    items: list[tuple[list[bool], list[bool | None], list[bool], list[bool], float]],
) -> Tally:
    """items: (gold, ICM labels, zero-shot labels, sign labels, chance) per unit; a unit is
    right when every label in it equals its gold label."""
    n_true = sum(sum(g) for g, *_ in items)
    n_all = sum(len(g) for g, *_ in items)
    majority_label = 2 * n_true >= n_all  # ties: True, as a coin would do no better
    t = Tally(unit, len(items), 0, 0, 0, 0, 0.0, 0, 0)
    for gold, icm, zs, sign, chance in items:
        icm_right = icm == gold
        zs_right = zs == gold
        t.icm += icm_right
        t.zero_shot += zs_right
        t.zero_shot_sign += sign == gold
        t.majority += all(g == majority_label for g in gold)
        t.chance += chance
        t.icm_only += icm_right and not zs_right
        t.zero_shot_only += zs_right and not icm_right
    return t


def compare(
    table: ClaimTable,
    icm_labels: Mapping[str, bool | None],
    gaps: Mapping[str, float],
) -> ZeroShotComparison:
    """ICM's labels against the zero-shot reference from `gaps` (every claim's zero-shot
    gap) and, where the claims have gold labels, against gold."""
    matched = zero_shot_labels(table, gaps, match_labels=icm_labels)
    sign = zero_shot_labels(table, gaps)
    zs = matched.labels
    to_core = {True: core.Label.TRUE, False: core.Label.FALSE}
    zs_violated = int(
        core.count_inconsistencies(table.to_claim_set(), [to_core[zs[c.id]] for c in table.claims])
    )
    groups = [g for g in table.groups().values() if len(g) >= 2]
    comparison = ZeroShotComparison(
        rule=matched.rule(),
        n_claims=len(table),
        agree_claims=sum(icm_labels.get(c.id) == zs[c.id] for c in table.claims),
        n_groups=len(groups),
        agree_groups=sum(all(icm_labels.get(c.id) == zs[c.id] for c in g) for g in groups),
        zero_shot_inconsistencies=zs_violated,
    )
    with_gold = [c for c in table.claims if c.gold is not None]
    if with_gold:
        comparison.claims = _tally(
            "claim",
            [
                ([bool(c.gold)], [icm_labels.get(c.id)], [zs[c.id]], [sign.labels[c.id]], 0.5)
                for c in with_gold
            ],
        )
        unit_items = []
        for g in groups:
            if any(c.gold is None for c in g):
                continue
            ids = [c.id for c in g]
            n_consistent = consistent_labellings(table, ids)
            chance = 1 / n_consistent if n_consistent else 2.0 ** -len(ids)
            unit_items.append(
                (
                    [bool(c.gold) for c in g],
                    [icm_labels.get(i) for i in ids],
                    [zs[i] for i in ids],
                    [sign.labels[i] for i in ids],
                    chance,
                )
            )
        if unit_items:
            comparison.groups = _tally("group", unit_items)
        for tally in (comparison.claims, comparison.groups):
            if tally is not None:
                tally.thresholded = matched.n_thresholded > 0
        comparison.warnings = _warnings(comparison)
    return comparison


def _warnings(c: ZeroShotComparison) -> list[str]:
    d = c.decisive
    if d is None or not d.n:
        return []
    out = []
    # A tie counts against ICM (it added nothing), unless both got everything right.
    if d.icm < d.zero_shot or (d.icm == d.zero_shot < d.n):
        how = "ties with" if d.icm == d.zero_shot else "does worse than"
        out.append(
            f"below-zero-shot: ICM {how} asking the model directly (zero-shot): {d.icm} vs "
            f"{d.zero_shot} of {d.n} {d.unit}s right; they differ on "
            f"{d.icm_only + d.zero_shot_only} {d.unit}(s): zero-shot right on "
            f"{d.zero_shot_only}, ICM on {d.icm_only} (sign test p = {d.p_value:.3g}); the "
            "search did not elicit more than the zero-shot labels hold"
        )
    baseline = max(d.majority, d.chance)
    if d.icm <= baseline:
        which = "the majority class" if d.majority >= d.chance else "chance"
        out.append(
            f"below-baseline: ICM gets {d.icm} of {d.n} {d.unit}s right, no more than "
            f"{which} ({baseline:g})"
        )
    return out
