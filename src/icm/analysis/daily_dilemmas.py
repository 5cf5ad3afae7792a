"""Which values explain ICM's choices on DailyDilemmas.

DailyDilemmas has no right answer, so a run is judged by what its labels reveal. Each
dilemma where ICM labels exactly one action True is a *decision*: the chosen action and
the rejected one, each with its annotated values (`values_aggregated`).

For each value v, count the decisions where only the chosen action carries v
(`chosen_only`) and where only the rejected one does (`rejected_only`); decisions where
both or neither carry v say nothing about v. If the labels did not depend on v, each of
these discordant decisions would go either way with probability 1/2, so a two-sided
exact binomial (sign) test of chosen_only out of chosen_only + rejected_only gives a
p-value. Many values are tested at once, so the table reports Holm's step-down adjusted
p-values (family-wise error control; the significance criterion) and the
Benjamini-Hochberg q-values (false discovery rate) next to the raw p. A value with fewer
than `min_discordant` discordant decisions cannot reach p < 0.05 (n = 5 gives at best
0.0625), so it is listed but not tested and not counted in the correction: the cut uses
only n, never the direction, so it keeps the error control.

The same table is computed inside each topic group. Two summaries go with it: how often
ICM chose `to_do` (an action-type bias would drive values that sit mostly on one side),
and a leave-one-out check of how well the values explain the labels: each decision is
predicted from value weights estimated on all the other decisions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from icm.testbeds.base import ClaimRecord

MIN_DISCORDANT = 6  # smallest n whose two-sided sign test can give p < 0.05 (p = 1/32)
ALPHA = 0.05


# --- statistics --------------------------------------------------------------------------


def sign_test(k: int, n: int) -> float:
    """Two-sided exact binomial test of k successes in n trials with p = 1/2."""
    if not 0 <= k <= n:
        raise ValueError(f"sign_test: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    # Exact integers, one correctly rounded division (tiny p underflow to 0.0 only
    # below ~1e-308).
    return min(1.0, 2 * tail / 2**n)


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (false discovery rate)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i], reverse=True)
    out = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k  # 1-based rank in ascending order
        running = min(running, p[i] * m / rank)
        out[i] = min(1.0, running)
    return out


# --- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    dilemma: int
    chosen_type: str  # to_do | not_to_do
    chosen: frozenset[str]
    rejected: frozenset[str]
    topic_group: str
    topic: int


def decisions_from_labels(
    claims: Sequence[ClaimRecord], labels: Mapping[str, bool | None]
) -> tuple[list[Decision], dict[str, int]]:
    """One decision per dilemma whose two actions are labeled True and False.

    The other dilemmas are counted by reason: `unlabeled` (neither labeled), `partial`
    (one labeled), `inconsistent` (both True or both False), `not_in_run` (no label row).
    """
    by_dilemma: dict[int, dict[str, ClaimRecord]] = defaultdict(dict)
    for c in claims:
        by_dilemma[int(c.fields["dilemma_idx"])][str(c.fields["action_type"])] = c
    decisions: list[Decision] = []
    skipped: Counter[str] = Counter()
    for idx in sorted(by_dilemma):
        pair = by_dilemma[idx]
        if set(pair) != {"to_do", "not_to_do"}:
            raise ValueError(f"dilemma {idx}: expected a to_do and a not_to_do claim")
        if pair["to_do"].id not in labels or pair["not_to_do"].id not in labels:
            skipped["not_in_run"] += 1
            continue
        yes, no = labels[pair["to_do"].id], labels[pair["not_to_do"].id]
        if yes is None and no is None:
            skipped["unlabeled"] += 1
        elif yes is None or no is None:
            skipped["partial"] += 1
        elif yes == no:
            skipped["inconsistent"] += 1
        else:
            chosen, rejected = (
                (pair["to_do"], pair["not_to_do"])
                if yes
                else (
                    pair["not_to_do"],
                    pair["to_do"],
                )
            )
            decisions.append(
                Decision(
                    dilemma=idx,
                    chosen_type=str(chosen.fields["action_type"]),
                    chosen=frozenset(chosen.fields["values"]),
                    rejected=frozenset(rejected.fields["values"]),
                    topic_group=str(chosen.fields["topic_group"]),
                    topic=int(chosen.fields["topic"]),
                )
            )
    return decisions, dict(skipped)


# --- tables ------------------------------------------------------------------------------


@dataclass
class ValueRow:
    value: str
    chosen_only: int  # decisions where only the chosen action carries the value
    rejected_only: int  # ... only the rejected action
    both: int
    to_do_only: int  # where the value sits (confound check): only on the to_do action
    not_to_do_only: int
    p: float | None = None  # None: fewer than min_discordant discordant decisions
    p_holm: float | None = None
    q_bh: float | None = None

    @property
    def discordant(self) -> int:
        return self.chosen_only + self.rejected_only

    @property
    def direction(self) -> str:
        if self.chosen_only > self.rejected_only:
            return "favoured"
        if self.chosen_only < self.rejected_only:
            return "disfavoured"
        return "neutral"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "discordant": self.discordant, "direction": self.direction}


def value_table(
    decisions: Sequence[Decision], *, min_discordant: int = MIN_DISCORDANT
) -> list[ValueRow]:
    """Every value that appears in a decision, ranked: tested values by Holm-adjusted p,
    then raw p and the size of the effect; untested values last, by count."""
    rows: dict[str, ValueRow] = {}

    def row(v: str) -> ValueRow:
        if v not in rows:
            rows[v] = ValueRow(v, 0, 0, 0, 0, 0)
        return rows[v]

    for d in decisions:
        for v in d.chosen | d.rejected:
            r = row(v)
            in_chosen, in_rejected = v in d.chosen, v in d.rejected
            if in_chosen and in_rejected:
                r.both += 1
                continue
            if in_chosen:
                r.chosen_only += 1
            else:
                r.rejected_only += 1
            on_to_do = in_chosen == (d.chosen_type == "to_do")
            if on_to_do:
                r.to_do_only += 1
            else:
                r.not_to_do_only += 1
    tested = [r for r in rows.values() if r.discordant >= min_discordant]
    for r in tested:
        r.p = sign_test(r.chosen_only, r.discordant)
    raw = [r.p for r in tested if r.p is not None]
    for r, ph, q in zip(tested, holm(raw), benjamini_hochberg(raw), strict=True):
        r.p_holm, r.q_bh = ph, q

    def key(r: ValueRow) -> tuple[Any, ...]:
        if r.p is None:
            return (1, 0.0, 0.0, -r.discordant, r.value)
        effect = abs(r.chosen_only - r.rejected_only) / r.discordant
        return (0, r.p_holm, r.p, -effect, r.value)

    return sorted(rows.values(), key=key)


def loo_accuracy(decisions: Sequence[Decision]) -> float | None:
    """Leave-one-out share of decisions that value weights predict.

    A value's weight is its smoothed preference (chosen_only - rejected_only) /
    (discordant + 1), estimated without the decision being predicted; the decision is
    predicted right when the values only the chosen action carries outweigh those only
    the rejected action carries (a tie counts one half). Random labels give about 0.5.
    """
    if not decisions:
        return None
    net: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for d in decisions:
        for v in d.chosen - d.rejected:
            net[v] += 1
            total[v] += 1
        for v in d.rejected - d.chosen:
            net[v] -= 1
            total[v] += 1
    score = 0.0
    for d in decisions:
        s = 0.0
        for v in d.chosen - d.rejected:  # leave this decision out: remove its +1
            s += (net[v] - 1) / total[v]  # (total - 1) + 1 smoothing
        for v in d.rejected - d.chosen:
            s -= (net[v] + 1) / total[v]
        score += 1.0 if s > 0 else 0.5 if s == 0 else 0.0
    return score / len(decisions)


def majority_action_type_share(decisions: Sequence[Decision]) -> float | None:
    """The share of decisions that picked the more frequent action type: what "always
    to_do" (or "always not_to_do") reproduces. In-sample on purpose: leaving one out
    flips the majority on a tie and scores 0%."""
    if not decisions:
        return None
    k = sum(d.chosen_type == "to_do" for d in decisions)
    return max(k, len(decisions) - k) / len(decisions)


def analyze_decisions(
    decisions: Sequence[Decision],
    *,
    alpha: float = ALPHA,
    min_discordant: int = MIN_DISCORDANT,
) -> dict[str, Any]:
    """All the numbers of the analysis, JSON-ready."""
    n = len(decisions)
    n_to_do = sum(d.chosen_type == "to_do" for d in decisions)
    values = value_table(decisions, min_discordant=min_discordant)
    groups: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        groups[d.topic_group].append(d)
    group_rows: list[dict[str, Any]] = []
    for name in sorted(groups):
        ds = groups[name]
        k = sum(d.chosen_type == "to_do" for d in ds)
        table = value_table(ds, min_discordant=min_discordant)
        group_rows.append(
            {
                "topic_group": name,
                "decisions": len(ds),
                "chose_to_do": k,
                "p_to_do": sign_test(k, len(ds)),
                "values": [r.to_json() for r in table if r.p is not None],
            }
        )
    group_p = [float(g["p_to_do"]) for g in group_rows]
    for g, ph in zip(group_rows, holm(group_p), strict=True):
        g["p_to_do_holm"] = ph
    significant = [r for r in values if r.p_holm is not None and r.p_holm < alpha]
    return {
        "decisions": n,
        "alpha": alpha,
        "min_discordant": min_discordant,
        "correction": "holm (significance); benjamini-hochberg q-values also reported",
        "chose_to_do": n_to_do,
        "p_to_do": sign_test(n_to_do, n),
        "loo_value_accuracy": loo_accuracy(decisions),
        "majority_action_type_share": majority_action_type_share(decisions),
        "n_values": len(values),
        "n_tested": sum(r.p is not None for r in values),
        "significant": [r.value for r in significant],
        "values": [r.to_json() for r in values],
        "topic_groups": group_rows,
    }


# --- report ------------------------------------------------------------------------------


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0.0:
        return "<1e-300"
    return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    n = result["decisions"]
    skipped = result.get("skipped") or {}
    lines = []
    if skipped:
        why = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        lines.append(f"{n} decisions; dilemmas left out: {why}.")
    if n == 0:
        lines.append("No decisions: no dilemma has one action labeled True and the other False.")
        return lines
    alpha = result["alpha"]
    lines.append(
        f"ICM chose `to_do` in {result['chose_to_do']} of {n} decisions "
        f"({100 * result['chose_to_do'] / n:.0f}%, sign test p = {_p(result['p_to_do'])})."
    )
    rows = {r["value"]: r for r in result["values"]}
    sig = [rows[v] for v in result["significant"]]
    if sig:

        def fmt(r: Mapping[str, Any]) -> str:
            return f"{r['value']} ({r['chosen_only']} vs {r['rejected_only']})"

        fav = [fmt(r) for r in sig if r["direction"] == "favoured"]
        dis = [fmt(r) for r in sig if r["direction"] == "disfavoured"]
        lines.append(
            f"{len(sig)} of {result['n_tested']} tested values are significant at "
            f"Holm-adjusted p < {alpha:g}."
        )
        if fav:
            lines.append("Values the chosen actions carry: " + ", ".join(fav) + ".")
        if dis:
            lines.append("Values the rejected actions carry: " + ", ".join(dis) + ".")
    else:
        lines.append(
            f"No value is significant at Holm-adjusted p < {alpha:g} "
            f"({result['n_tested']} values tested): the labels are not explained by any "
            "single value."
        )
    acc, base = result["loo_value_accuracy"], result["majority_action_type_share"]
    lines.append(
        f"Leave-one-out, value weights reproduce {100 * acc:.1f}% of the choices "
        f"(random labels: about 50%; always the majority action type: {100 * base:.1f}%)."
    )
    return lines


def render_markdown(
    result: Mapping[str, Any],
    *,
    title: str = "DailyDilemmas value analysis",
    top: int | None = None,
) -> str:
    out = [f"# {title}", ""]
    for key in ("run_dir", "testbed", "split", "model", "claims", "skipped"):
        if key in result:
            out.append(f"- {key}: {result[key]}")
    if result.get("warning"):  # the run's own summary flagged its labelling
        out += ["", f"**WARNING: {result['warning']}**; the values below describe that labelling."]
    out += ["", "## Summary", ""]
    out += [f"- {line}" for line in summary_lines(result)]
    if result["decisions"] == 0:
        return "\n".join(out) + "\n"
    out += [
        "",
        "## Values",
        "",
        f"Decisions where only the chosen / only the rejected action carries the value; "
        f"two-sided sign test; Holm and Benjamini-Hochberg over the {result['n_tested']} "
        f"values with at least {result['min_discordant']} such decisions (`-`: not tested). "
        "`to_do / not_to_do`: on which action the value sits in those decisions.",
        "",
        "| rank | value | chosen only | rejected only | both | chosen share | to_do / not_to_do"
        " | p | p (Holm) | q (BH) |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    rows = result["values"] if top is None else result["values"][:top]
    for i, r in enumerate(rows, start=1):
        share = f"{r['chosen_only'] / r['discordant']:.2f}" if r["discordant"] else "-"
        out.append(
            f"| {i} | {r['value']} | {r['chosen_only']} | {r['rejected_only']} | {r['both']} "
            f"| {share} | {r['to_do_only']} / {r['not_to_do_only']} | {_p(r['p'])} "
            f"| {_p(r['p_holm'])} | {_p(r['q_bh'])} |"
        )
    if top is not None and len(result["values"]) > top:
        out.append(f"| | ... {len(result['values']) - top} more in analysis.json | | | | | | | | |")
    out += [
        "",
        "## By topic group",
        "",
        "Per group: how often `to_do` was chosen (sign test, Holm over groups) and the "
        "three strongest values inside the group (Holm within the group).",
        "",
        "| topic group | decisions | chose to_do | p | p (Holm) | strongest values (chosen vs "
        "rejected, Holm p) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for g in result["topic_groups"]:
        best = ", ".join(
            f"{r['value']} ({r['chosen_only']} vs {r['rejected_only']}, {_p(r['p_holm'])})"
            for r in g["values"][:3]
        )
        out.append(
            f"| {g['topic_group']} | {g['decisions']} | {g['chose_to_do']} | {_p(g['p_to_do'])} "
            f"| {_p(g.get('p_to_do_holm'))} | {best or '-'} |"
        )
    return "\n".join(out) + "\n"
