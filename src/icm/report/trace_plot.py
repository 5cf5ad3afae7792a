"""`icm plot RUN_DIR`: the search trace of a run as one PNG.

Panels: U, agreement of the current labels with gold (monitoring only; the search never
sees gold), accept rate over a sliding window, and temperature, against the iteration.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_trace(trace: Sequence[dict[str, Any]], out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in trace})
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    window = 50
    for b in batches:
        rows = [r for r in trace if r["batch"] == b]
        it = [r["iteration"] for r in rows]
        label = f"batch {b}" if len(batches) > 1 else None
        axes[0].plot(it, [r["utility"] for r in rows], label=label, lw=1)
        agree = [
            (r["iteration"], r["gold_agreement"]) for r in rows if r["gold_agreement"] is not None
        ]
        if agree:
            axes[1].plot([a for a, _ in agree], [100 * g for _, g in agree], lw=1)
        moves = [r for r in rows if r["outcome"] in ("accepted", "rejected")]
        rate_x, rate_y = [], []
        for i in range(len(moves)):
            recent = moves[max(0, i - window + 1) : i + 1]
            rate_x.append(moves[i]["iteration"])
            rate_y.append(100 * sum(m["outcome"] == "accepted" for m in recent) / len(recent))
        axes[2].plot(rate_x, rate_y, lw=1)
        temps = [(r["iteration"], r["temperature"]) for r in rows if r["outcome"] != "init"]
        axes[3].plot([a for a, _ in temps], [t for _, t in temps], lw=1)
    axes[0].set_ylabel("U = alpha*MP - I")
    axes[1].set_ylabel("agreement with gold (%)\n(monitoring only)")
    axes[2].set_ylabel(f"accept rate (%)\nlast {window} proposals")
    axes[3].set_ylabel("temperature")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("iteration")
    if len(batches) > 1:
        axes[0].legend(fontsize=7, ncol=4)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
