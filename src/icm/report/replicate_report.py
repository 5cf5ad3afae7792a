"""The report of `icm replicate` (icm.replicate): report.md (testbed x method, mean +/- std
over seeds, the paper's numbers beside ours, the truthfulqa consistency-key gap) and
figure.png (grouped bars with error bars, in the style of the paper's Figure 3).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from icm.evaluate import METRIC_NAMES
from icm.replicate import METHODS, Cell, ReplicateConfig, summarize, testbed_metric

# Read off the paper's Figure 3 (Llama 3.1 8B for GSM8K-verification, 70B otherwise),
# in percent. For Alpaca the paper's golden column is its human labels.
PAPER_NUMBERS: dict[str, dict[str, float]] = {
    "gsm8k": {"zero-shot": 48.0, "zero-shot-chat": 65.0, "golden": 81.5, "icm": 81.0},
    "truthfulqa": {"zero-shot": 60.0, "zero-shot-chat": 74.0, "golden": 92.0, "icm": 91.0},
    "alpaca": {"zero-shot": 49.6, "zero-shot-chat": 66.6, "golden": 65.5, "icm": 68.0},
}
PAPER_MODEL = {"gsm8k": "Llama 3.1 8B", "truthfulqa": "Llama 3.1 70B", "alpaca": "Llama 3.1 70B"}

METHOD_NAMES = {
    "zero-shot": "Zero-shot",
    "zero-shot-chat": "Zero-shot (chat)",
    "random": "Random labels",
    "random-matched": "Random (ICM's accuracy)",
    "bootstrap": "Bootstrap",
    "golden": "Golden labels",
    "icm": "ICM",
    "icm-paper-consistency": "ICM, --consistency paper",
}


MAX_WARNING_LINES = 30


def warning_lines(cells: list[Cell]) -> list[str]:
    """Every cell whose number rests on a degenerate or inconsistent labelling, or on
    predictions that are all one label (icm.evaluate.eval_warnings), listed under the
    table: a mean can look fine while some seeds behind it are degenerate."""
    found = [
        f"- {c.testbed} / {METHOD_NAMES.get(c.method, c.method)} / seed {c.seed}: {w}"
        for c in cells
        for w in c.details.get("warnings", [])
    ]
    if not found:
        return []
    shown = found[:MAX_WARNING_LINES]
    more = len(found) - len(shown)
    return [
        "",
        f"## Warnings ({len(found)})",
        "",
        *shown,
        *([f"- ... and {more} more in cells.jsonl"] if more else []),
    ]


def ranked_metrics(cfg: ReplicateConfig, cells: list[Cell]) -> dict[str, str]:
    """testbed -> the imbalance-robust metric its methods are ranked and plotted by."""
    return {t: testbed_metric(cells, t) for t in cfg.testbeds if any(c.testbed == t for c in cells)}


def write_report(
    cfg: ReplicateConfig,
    cells: list[Cell],
    *,
    command: str,
    wall_seconds: float,
    model: str,
    date: str,
) -> Path:
    metrics = ranked_metrics(cfg, cells)
    summary = summarize(cells)
    methods = [m for m in (*METHODS, "icm-paper-consistency") if any(c.method == m for c in cells)]
    lines = [
        *_header_lines(cfg, command=command, wall_seconds=wall_seconds, model=model, date=date),
        *_ranked_lines(cells, metrics, methods),
        *_accuracy_lines(cells, list(metrics), methods, summary),
        *_paper_lines([t for t in metrics if t in PAPER_NUMBERS]),
        *_consistency_gap_lines(cells, summary),
        *_icm_agreement_lines(cells),
        *warning_lines(cells),
    ]
    path = cfg.out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _header_lines(
    cfg: ReplicateConfig, *, command: str, wall_seconds: float, model: str, date: str
) -> list[str]:
    """What ran: the command, model, date, and the settings every cell shares."""
    alpha = cfg.run.resolved_alpha(cfg.run.batch_claims(cfg.train_size))
    held_out = (
        f"{cfg.test_fraction:g} of each file's groups held out"
        if cfg.test_fraction is not None
        else f"{cfg.test_size or 'all'} test claims"
    )
    return [
        "# icm replicate",
        "",
        f"- command: `{command}`",
        f"- model: {model}",
        f"- date: {date}; wall time {wall_seconds / 60:.1f} min",
        f"- per testbed: ICM on {cfg.train_size} train claims (K={cfg.run.K}, mp={cfg.run.mp}, "
        f"alpha={alpha:g}), evaluated on {held_out}, {cfg.seeds} seeds; in %, mean +/- std "
        "over seeds",
        "- ranked by a metric class imbalance cannot fool (plain accuracy ranks a labelling "
        "that predicts the majority class first): group accuracy (argmax) where the test "
        "claims come in groups with exactly one true claim, else balanced accuracy (50% for "
        "any constant prediction); the metric is named per testbed",
        "",
    ]


def _ranked_lines(cells: list[Cell], metrics: dict[str, str], methods: list[str]) -> list[str]:
    """The main table (testbed x method, by each testbed's ranking metric) and the ranking."""
    ranked = summarize(cells, metrics)
    lines = [
        "| testbed | metric | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for t in metrics:
        row = []
        for m in methods:
            if (t, m) in ranked:
                mean, std, _ = ranked[(t, m)]
                row.append(f"{mean:.1f} +/- {std:.1f}")
            else:
                row.append("-")
        lines.append(f"| {t} | {METRIC_NAMES[metrics[t]]} | " + " | ".join(row) + " |")
    lines += ["", "Ranking (mean over seeds):", ""]
    for t in metrics:
        order = sorted((m for m in methods if (t, m) in ranked), key=lambda m: -ranked[(t, m)][0])
        lines.append(
            f"- {t}, by {METRIC_NAMES[metrics[t]]}: "
            + " > ".join(f"{METHOD_NAMES[m]} {ranked[(t, m)][0]:.1f}" for m in order)
        )
    return lines


def _accuracy_lines(
    cells: list[Cell],
    testbeds: list[str],
    methods: list[str],
    summary: dict[tuple[str, str], tuple[float, float, int]],
) -> list[str]:
    """Plain accuracy beside the majority-class rate, so that a reader sees the gap."""
    majority = summarize(cells, "majority_class_rate")
    lines = [
        "",
        "Plain accuracy, beside the rate of always predicting the test split's majority class:",
        "",
        "| testbed | majority class | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for t in testbeds:
        row = [
            f"{summary[(t, m)][0]:.1f} +/- {summary[(t, m)][1]:.1f}" if (t, m) in summary else "-"
            for m in methods
        ]
        rates = [v[0] for (tb, _), v in majority.items() if tb == t]
        rate = f"{statistics.mean(rates):.1f}" if rates else "-"
        lines.append(f"| {t} | {rate} | " + " | ".join(row) + " |")
    return lines


def _paper_lines(testbeds: list[str]) -> list[str]:
    """The paper's Figure 3 numbers for the testbeds it has (none: no lines)."""
    if not testbeds:
        return []
    lines = [
        "",
        "The paper's numbers (read off its Figure 3):",
        "",
        "| testbed | model | Zero-shot | Zero-shot (chat) | Golden | ICM |",
        "|---|---|---|---|---|---|",
    ]
    for t in testbeds:
        p = PAPER_NUMBERS[t]
        lines.append(
            f"| {t} | {PAPER_MODEL[t]} | {p['zero-shot']} | {p['zero-shot-chat']} | "
            f"{p['golden']} | {p['icm']} |"
        )
    return lines


def _consistency_gap_lines(
    cells: list[Cell], summary: dict[tuple[str, str], tuple[float, float, int]]
) -> list[str]:
    """truthfulqa: ICM with gold-derived keys against the leak-free default, in words."""
    if not any(c.method == "icm-paper-consistency" for c in cells):
        return []
    a = summary.get(("truthfulqa", "icm"))
    b = summary.get(("truthfulqa", "icm-paper-consistency"))
    if not (a and b):
        return []
    gap, noise = b[0] - a[0], max(a[1], b[1])
    reading = (
        "that comes from gold labels leaking into the objective"
        if abs(gap) > noise
        else f"no larger than the spread over seeds (std up to {noise:.1f}), so this "
        "run cannot tell whether the leak helps"
    )
    return [
        "",
        f"truthfulqa: ICM with the original code's gold-derived consistency keys "
        f"(--consistency paper) scores {b[0]:.1f}%, the leak-free default {a[0]:.1f}%: "
        f"a gap of {gap:+.1f} points, {reading}.",
    ]


def _icm_agreement_lines(cells: list[Cell]) -> list[str]:
    icm_agree: list[float] = [
        a
        for c in cells
        if c.method == "icm" and (a := c.details.get("icm_agreement_with_gold")) is not None
    ]
    if not icm_agree:
        return []
    return [
        "",
        f"ICM's train labels agreed with gold on {100 * statistics.mean(icm_agree):.1f}% "
        "of the labeled train claims (mean over testbeds and seeds).",
    ]


def plot_report(cfg: ReplicateConfig, cells: list[Cell], *, model: str | None = None) -> Path:
    """figure.png: per testbed and method, the mean over seeds of the imbalance-robust
    metric the report ranks by (named under each testbed), error bars one standard
    deviation over the seeds; '*' marks a bar with a seed whose predictions were all one
    label. The title names the model (default: cfg.run.model) and the sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ranked_metrics(cfg, cells)
    summary = summarize(cells, metrics)
    testbeds = list(metrics)
    methods = [m for m in METHODS if any(c.method == m for c in cells)]
    one_sided = {
        (c.testbed, c.method)
        for c in cells
        if any(str(w).startswith("degenerate predictions") for w in c.details.get("warnings", []))
    }
    colors = {
        "zero-shot": "#bbbbbb",
        "zero-shot-chat": "#888888",
        "random": "#e0c097",
        "random-matched": "#d9a05b",
        "bootstrap": "#9ecae1",
        "golden": "#fdd835",
        "icm": "#43a047",
    }
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(testbeds) + 2), 4))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs, ys, es = [], [], []
        for j, t in enumerate(testbeds):
            if (t, m) in summary:
                mean, std, _ = summary[(t, m)]
                xs.append(j + (i - (len(methods) - 1) / 2) * width)
                ys.append(mean)
                es.append(std)
                if (t, m) in one_sided:
                    ax.text(xs[-1], min(mean + std, 97) + 1, "*", ha="center", fontsize=8)
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=METHOD_NAMES[m], color=colors.get(m))
    ax.set_xticks(
        range(len(testbeds)), [f"{t}\n{METRIC_NAMES[metrics[t]]}" for t in testbeds], fontsize=7
    )
    ax.set_ylabel("test score (%), metric under each testbed")
    ax.set_ylim(0, 100)
    ax.axhline(50, color="grey", lw=0.5)
    ax.legend(
        fontsize=7, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.16)
    )
    n_seeds = max((n for _, _, n in summary.values()), default=0)
    flagged = "; *: a seed's predictions were all one label" if one_sided else ""
    ax.set_title(
        f"icm replicate: {model or cfg.run.model}\n"
        f"{cfg.train_size} train claims labelled, scored on held-out claims; "
        f"bars: mean over {n_seeds} seed(s)\n"
        f"error bars: 1 standard deviation over the seeds{flagged}; the paper's numbers "
        "are in report.md",
        fontsize=7.5,
    )
    fig.tight_layout()
    path = cfg.out / "figure.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
