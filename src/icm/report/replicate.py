"""`icm replicate`: the paper's comparison as one command.

For each testbed and seed: run ICM on a train sample, then evaluate on the held-out test
split with demonstrations labeled by ICM, by gold labels, by random labels (plain, and
matched to ICM's accuracy), zero-shot, the bootstrap baseline, and a chat model when one
is given. Writes report.md (testbed x method, mean +/- std over seeds, the paper's numbers
beside ours) and figure.png (grouped bars with error bars, in the style of the paper's
Figure 3). For truthfulqa it also runs ICM with --consistency paper (gold-derived keys)
and reports the gap to the leak-free default.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from icm.config import RunConfig
from icm.evaluate import EvalConfig, EvalResult, run_eval

# Read off the paper's Figure 3 (Llama 3.1 8B for GSM8K-verification, 70B otherwise),
# in percent. For Alpaca the paper's golden column is its human labels.
PAPER_NUMBERS: dict[str, dict[str, float]] = {
    "gsm8k": {"zero-shot": 48.0, "zero-shot-chat": 65.0, "golden": 81.5, "icm": 81.0},
    "truthfulqa": {"zero-shot": 60.0, "zero-shot-chat": 74.0, "golden": 92.0, "icm": 91.0},
    "alpaca": {"zero-shot": 49.6, "zero-shot-chat": 66.6, "golden": 65.5, "icm": 68.0},
}
PAPER_MODEL = {"gsm8k": "Llama 3.1 8B", "truthfulqa": "Llama 3.1 70B", "alpaca": "Llama 3.1 70B"}

METHODS = ("zero-shot", "zero-shot-chat", "random", "random-matched", "bootstrap", "golden", "icm")
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


@dataclass
class ReplicateConfig:
    testbeds: list[str]
    seeds: int = 3
    train_size: int = 32
    test_size: int = 100
    run: RunConfig = field(default_factory=RunConfig)  # search and model options
    data_dir: str | None = None
    context_tokens: int = 4096
    chat_model: str | None = None
    chat_base_url: str | None = None
    out: Path = Path("replicate")


@dataclass
class Cell:
    testbed: str
    method: str
    seed: int
    accuracy: float
    ci95: tuple[float, float]
    n_test: int
    n_demos: int
    details: dict[str, Any]


def run_replicate(cfg: ReplicateConfig, log: Any = print) -> list[Cell]:
    from icm.run import start_run

    cells: list[Cell] = []
    cfg.out.mkdir(parents=True, exist_ok=True)
    cells_path = cfg.out / "cells.jsonl"
    done = set()
    if cells_path.exists():  # resume: keep what is done
        for line in cells_path.read_text().splitlines():
            row = json.loads(line)
            cells.append(Cell(**{**row, "ci95": tuple(row["ci95"])}))
            done.add((row["testbed"], row["method"], row["seed"]))

    def record(cell: Cell) -> None:
        cells.append(cell)
        with cells_path.open("a") as f:
            f.write(json.dumps(cell.__dict__) + "\n")

    for testbed in cfg.testbeds:
        for seed in range(cfg.seeds):
            variants = [("icm", "default")]
            if testbed == "truthfulqa":
                variants.append(("icm-paper-consistency", "paper"))
            run_dirs: dict[str, Path] = {}
            for method, consistency in variants:
                run_dir = cfg.out / "runs" / f"{testbed}-{method}-seed{seed}"
                run_dirs[method] = run_dir
                if (testbed, method, seed) in done:
                    continue
                if not (run_dir / "labels.jsonl").exists():
                    run_cfg = replace(
                        cfg.run,
                        testbed=testbed,
                        split="train",
                        size=cfg.train_size,
                        seed=cfg.run.seed + seed,
                        consistency=consistency,
                        data_dir=cfg.data_dir,
                        out=str(run_dir),
                    )
                    started = time.monotonic()
                    if (run_dir / "config.json").exists():
                        from icm.run import resume_run

                        resume_run(run_dir, {}, progress=False)
                    else:
                        start_run(run_cfg, progress=False)
                    log(
                        f"{testbed} seed {seed}: ICM ({consistency}) in "
                        f"{time.monotonic() - started:.0f}s"
                    )
                record(evaluate_cell(cfg, testbed, method, seed, labels=str(run_dir)))
            for method in METHODS:
                if method == "icm" or (testbed, method, seed) in done:
                    continue
                if method == "zero-shot-chat" and not cfg.chat_base_url:
                    continue
                record(
                    evaluate_cell(
                        cfg, testbed, method, seed, labels=method, matched_run=str(run_dirs["icm"])
                    )
                )
                log(f"{testbed} seed {seed}: {method} {100 * cells[-1].accuracy:.1f}%")
    return cells


def evaluate_cell(
    cfg: ReplicateConfig,
    testbed: str,
    method: str,
    seed: int,
    *,
    labels: str,
    matched_run: str | None = None,
) -> Cell:
    ecfg = EvalConfig(
        labels=labels,
        testbed=testbed,
        data_dir=cfg.data_dir,
        train_size=cfg.train_size,
        test_size=cfg.test_size,
        seed=seed,
        matched_run=matched_run,
        context_tokens=cfg.context_tokens,
        model=cfg.run,
        chat_model=cfg.chat_model,
        chat_base_url=cfg.chat_base_url,
    )
    result: EvalResult = run_eval(ecfg)
    return Cell(
        testbed,
        method,
        seed,
        result.accuracy,
        result.ci95,
        result.n_test,
        result.n_demos,
        result.details,
    )


def summarize(cells: list[Cell]) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(testbed, method) -> (mean %, std %, seeds)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for c in cells:
        groups.setdefault((c.testbed, c.method), []).append(100 * c.accuracy)
    return {
        k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
        for k, v in groups.items()
    }


def write_report(
    cfg: ReplicateConfig,
    cells: list[Cell],
    *,
    command: str,
    wall_seconds: float,
    model: str,
    date: str,
) -> Path:
    summary = summarize(cells)
    testbeds = [t for t in cfg.testbeds if any(c.testbed == t for c in cells)]
    methods = [m for m in (*METHODS, "icm-paper-consistency") if any(c.method == m for c in cells)]
    alpha = cfg.run.resolved_alpha(cfg.run.batch_claims(cfg.train_size))
    lines = [
        "# icm replicate",
        "",
        f"- command: `{command}`",
        f"- model: {model}",
        f"- date: {date}; wall time {wall_seconds / 60:.1f} min",
        f"- per testbed: ICM on {cfg.train_size} train claims (K={cfg.run.K}, mp={cfg.run.mp}, "
        f"alpha={alpha:g}), evaluated on {cfg.test_size} test claims, {cfg.seeds} seeds; "
        "accuracy in %, mean +/- std over seeds",
        "",
        "| testbed | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for t in testbeds:
        row = []
        for m in methods:
            if (t, m) in summary:
                mean, std, _ = summary[(t, m)]
                row.append(f"{mean:.1f} +/- {std:.1f}")
            else:
                row.append("-")
        lines.append(f"| {t} | " + " | ".join(row) + " |")
    paper = [t for t in testbeds if t in PAPER_NUMBERS]
    if paper:
        lines += [
            "",
            "The paper's numbers (read off its Figure 3):",
            "",
            "| testbed | model | Zero-shot | Zero-shot (chat) | Golden | ICM |",
            "|---|---|---|---|---|---|",
        ]
        for t in paper:
            p = PAPER_NUMBERS[t]
            lines.append(
                f"| {t} | {PAPER_MODEL[t]} | {p['zero-shot']} | {p['zero-shot-chat']} | "
                f"{p['golden']} | {p['icm']} |"
            )
    if any(c.method == "icm-paper-consistency" for c in cells):
        a = summary.get(("truthfulqa", "icm"))
        b = summary.get(("truthfulqa", "icm-paper-consistency"))
        if a and b:
            gap, noise = b[0] - a[0], max(a[1], b[1])
            reading = (
                "that comes from gold labels leaking into the objective"
                if abs(gap) > noise
                else f"no larger than the spread over seeds (std up to {noise:.1f}), so this "
                "run cannot tell whether the leak helps"
            )
            lines += [
                "",
                f"truthfulqa: ICM with the original code's gold-derived consistency keys "
                f"(--consistency paper) scores {b[0]:.1f}%, the leak-free default {a[0]:.1f}%: "
                f"a gap of {gap:+.1f} points, {reading}.",
            ]
    icm_agree: list[float] = [
        a
        for c in cells
        if c.method == "icm" and (a := c.details.get("icm_agreement_with_gold")) is not None
    ]
    if icm_agree:
        lines += [
            "",
            f"ICM's train labels agreed with gold on {100 * statistics.mean(icm_agree):.1f}% "
            "of the labeled train claims (mean over testbeds and seeds).",
        ]
    path = cfg.out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_report(cfg: ReplicateConfig, cells: list[Cell], *, model: str | None = None) -> Path:
    """figure.png: mean test accuracy per testbed and method over the seeds, error bars one
    standard deviation over the seeds; the title names the model (default: cfg.run.model)
    and the sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(cells)
    testbeds = [t for t in cfg.testbeds if any(c.testbed == t for c in cells)]
    methods = [m for m in METHODS if any(c.method == m for c in cells)]
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
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=METHOD_NAMES[m], color=colors.get(m))
    for j, t in enumerate(testbeds):
        if t in PAPER_NUMBERS:
            ax.plot([j - 0.4, j + 0.4], [PAPER_NUMBERS[t]["icm"]] * 2, "k:", lw=1)
    ax.set_xticks(range(len(testbeds)), testbeds)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(50, color="grey", lw=0.5)
    ax.legend(
        fontsize=7, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.12)
    )
    n_seeds = max((n for _, _, n in summary.values()), default=0)
    ax.set_title(
        f"icm replicate: {model or cfg.run.model}\n"
        f"{cfg.train_size} train claims labelled, accuracy on {cfg.test_size} test claims; "
        f"bars: mean over {n_seeds} seed(s)\n"
        "error bars: 1 standard deviation over the seeds; dotted: the paper's ICM "
        "(larger models)",
        fontsize=7.5,
    )
    fig.tight_layout()
    path = cfg.out / "figure.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
