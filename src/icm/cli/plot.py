"""icm plot: plot the search trace of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from icm.errors import ConfigError

# Formats matplotlib's Agg backend writes, chosen by the file name's suffix.
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plot = sub.add_parser(
        "plot",
        help="plot the search trace of a run",
        description="Plot a run's search trace (trace.jsonl) as an image: the objective, the "
        "inconsistencies, agreement with gold where known, and the temperature, over the "
        "search.",
    )
    plot.add_argument("run_dir", type=Path, help="an icm run directory")
    plot.add_argument(
        "--out",
        type=Path,
        default=None,
        help="image path, .png/.pdf/.svg/.jpg (default RUN_DIR/trace.png)",
    )
    plot.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from icm.report.trace_plot import plot_trace
    from icm.run_dir import read_json_object, read_jsonl

    if args.out is not None and args.out.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(
            f"--out: '{args.out}' is not an image file name; end it in {', '.join(PLOT_SUFFIXES)}"
        )
    trace_path = args.run_dir / "trace.jsonl"
    if not trace_path.exists():
        raise ConfigError(f"{args.run_dir}: no trace.jsonl (is this an icm run directory?)")
    # The title's testbed, model, N and alpha, and which panels the run has.
    metrics_path, config_path = args.run_dir / "metrics.json", args.run_dir / "config.json"
    metrics = read_json_object(metrics_path) if metrics_path.exists() else {}
    config = read_json_object(config_path) if config_path.exists() else {}
    settings = config.get("config")
    settings = settings if isinstance(settings, dict) else {}
    summary = metrics.get("summary")
    summary = summary if isinstance(summary, dict) else {}
    alpha = metrics.get("alpha")
    reference = (metrics.get("zero_shot") or {}).get("per_claim") or {}
    zero_shot = reference["zero_shot"] / reference["n"] if reference.get("n") else None
    out = plot_trace(
        read_jsonl(trace_path),
        args.out or args.run_dir / "trace.png",
        title=str(args.run_dir),
        testbed=metrics.get("testbed"),
        model=metrics.get("model"),
        n_claims=metrics.get("n_claims"),
        alpha=alpha if isinstance(alpha, int | float) else None,
        has_constraints=summary.get("constraints_total") != 0,  # unknown: drawn
        show_temperature=settings.get("algorithm") != "paper",
        zero_shot_agreement=zero_shot,
    )
    print(out)
    return 0
