"""`icm plot RUN_DIR`: the search trace of a run as one PNG.

Panels, against the iteration (a log axis: most change happens in the first hundred
steps, and a run of thousands is then a flat tail): U; the number of violated consistency
constraints (when the run has any); agreement of the current labels with gold
(monitoring only, when the claims have gold; the search never sees it), with the 50% a
random labelling gets; the accept rate over a sliding window; and the temperature (log
scale) where it is not a function of the iteration alone (the original code's schedule
counts accepted changes). The title names the testbed, model, N and alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ACCEPT_WINDOW = 50


def _finite(values: Sequence[Any]) -> list[float]:
    """Values as floats, NaN (a gap in the line) where not a finite number."""
    out = []
    for v in values:
        x = float(v) if isinstance(v, int | float) else math.nan
        out.append(x if math.isfinite(x) else math.nan)
    return out


def _temperatures(trace: Sequence[dict[str, Any]]) -> tuple[list[float], bool]:
    """The temperatures to plot and whether they are log10 values. matplotlib's log axis
    overflows computing its ticks for a temperature near 1e308 (--initial_T 1e308): such
    runs are plotted as log10 on a linear axis instead."""
    temps = _finite([r["temperature"] for r in trace])
    shown = [t for t in temps if t > 0]
    if all(1e-300 <= t <= 1e300 for t in shown):
        return [t if t > 0 else math.nan for t in temps], False
    return [math.log10(t) if t > 0 else math.nan for t in temps], True


def trace_title(
    title: str = "",
    *,
    testbed: str | None = None,
    model: str | None = None,
    n_claims: int | None = None,
    alpha: float | None = None,
) -> str:
    parts = [p for p in (testbed, f"model {model}" if model else None) if p]
    if n_claims is not None:
        parts.append(f"N = {n_claims} claims")
    if alpha is not None:
        parts.append(f"alpha = {alpha:g}")
    described = ", ".join(parts)
    return " | ".join(p for p in (title, described) if p)


def plot_trace(
    trace: Sequence[dict[str, Any]],
    out: Path,
    title: str = "",
    *,
    testbed: str | None = None,
    model: str | None = None,
    n_claims: int | None = None,
    alpha: float | None = None,
    has_constraints: bool = True,
    show_temperature: bool = True,
    zero_shot_agreement: float | None = None,
) -> Path:
    """Plot `trace` (the rows of trace.jsonl) to `out`. The title is `title` followed by
    the testbed, the model, the number of claims and alpha, where given. Without
    constraints there is no inconsistency panel, without gold no agreement panel;
    `show_temperature=False` drops the temperature (a function of the iteration alone
    under --algorithm paper: it would only repeat the configuration). `zero_shot_agreement`
    (the zero-shot labels' agreement with gold) is drawn beside chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in trace})
    has_gold = any(r.get("gold_agreement") is not None for r in trace)
    panels = ["utility"]
    panels += ["inconsistent"] if has_constraints else []
    panels += ["gold"] if has_gold else []
    panels += ["accept"]
    panels += ["temperature"] if show_temperature else []
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels) + 0.6), sharex=True)
    ax = dict(zip(panels, axes, strict=True))
    for b in batches:
        rows = [r for r in trace if r["batch"] == b]
        _plot_batch(ax, rows, f"batch {b}" if len(batches) > 1 else None)
    ax["utility"].set_ylabel("U = alpha*MP - I")
    if "inconsistent" in ax:
        _style_inconsistent_panel(ax["inconsistent"], trace)
    if "gold" in ax:
        _style_gold_panel(ax["gold"], zero_shot_agreement)
    ax["accept"].set_ylim(-2, 102)
    ax["accept"].set_ylabel(f"accept rate (%)\nlast {ACCEPT_WINDOW} proposals")
    if "temperature" in ax:
        _style_temperature_panel(ax["temperature"], trace)
    # Iteration 0 is the initialization: a symmetric log axis keeps it, linear up to 10.
    axes[-1].set_xscale("symlog", linthresh=10)
    axes[-1].set_xlim(0, max([10, *(r["iteration"] for r in trace)]))
    axes[-1].set_xlabel("iteration (log scale beyond 10)")
    if len(batches) > 1:
        ax["utility"].legend(fontsize=7, ncol=4)
    full_title = trace_title(title, testbed=testbed, model=model, n_claims=n_claims, alpha=alpha)
    if full_title:
        fig.suptitle(full_title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_batch(ax: dict[str, Any], rows: list[dict[str, Any]], label: str | None) -> None:
    """One batch's line in every panel."""
    it = [r["iteration"] for r in rows]
    ax["utility"].plot(it, _finite([r["utility"] for r in rows]), label=label, lw=1)
    if "inconsistent" in ax:
        ax["inconsistent"].step(
            it, _finite([r.get("inconsistent") for r in rows]), where="post", lw=1
        )
    agree = [
        (r["iteration"], r["gold_agreement"]) for r in rows if r.get("gold_agreement") is not None
    ]
    if agree and "gold" in ax:
        ax["gold"].plot([a for a, _ in agree], _finite([100 * g for _, g in agree]), lw=1)
    moves = [r for r in rows if r["outcome"] in ("accepted", "rejected")]
    rate_x, rate_y = [], []
    for i in range(len(moves)):
        recent = moves[max(0, i - ACCEPT_WINDOW + 1) : i + 1]
        rate_x.append(moves[i]["iteration"])
        rate_y.append(100 * sum(m["outcome"] == "accepted" for m in recent) / len(recent))
    ax["accept"].plot(rate_x, rate_y, lw=1)
    if "temperature" in ax:
        steps = [r for r in rows if r["outcome"] != "init"]
        ax["temperature"].plot([r["iteration"] for r in steps], _temperatures(steps)[0], lw=1)


def _style_inconsistent_panel(inc_ax: Any, trace: Sequence[dict[str, Any]]) -> None:
    from matplotlib.ticker import MaxNLocator

    inc_ax.set_ylabel("inconsistencies I\n(violated constraints)")
    counts = [x for x in _finite([r.get("inconsistent") for r in trace]) if not math.isnan(x)]
    most = max(counts, default=0.0)
    inc_ax.set_ylim(0, max(1.0, most) * 1.1)
    inc_ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _style_gold_panel(gold_ax: Any, zero_shot_agreement: float | None) -> None:
    """Chance (50%) and, where given, the zero-shot labels' agreement as reference lines."""
    gold_ax.axhline(50, color="grey", lw=0.8, ls="--")
    gold_ax.annotate(
        "chance (random labels)",
        xy=(1, 50),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 3),
        textcoords="offset points",
        ha="right",
        fontsize=7,
        color="grey",
    )
    if zero_shot_agreement is not None:
        level = 100 * zero_shot_agreement
        gold_ax.axhline(level, color="tab:red", lw=0.8, ls=":")
        gold_ax.annotate(
            f"zero-shot ({level:.1f}%)",
            xy=(1, level),
            xycoords=("axes fraction", "data"),
            xytext=(-4, -10),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="tab:red",
        )
    gold_ax.set_ylim(-2, 102)
    gold_ax.set_ylabel("agreement with gold (%)\n(monitoring only)")


def _style_temperature_panel(t_ax: Any, trace: Sequence[dict[str, Any]]) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    t_ax.set_ylabel("temperature\n(log scale)")
    temps, as_log10 = _temperatures(trace)
    if as_log10:
        t_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        t_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"$10^{{{v:g}}}$"))
    elif any(t > 0 for t in temps):  # none with --K 0: a log axis of nothing fails
        t_ax.set_yscale("log")
