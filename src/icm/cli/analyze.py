"""`icm analyze RUN_DIR`: what a run's labels reveal, for testbeds without gold answers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from icm.cli.options import add_option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse a run's labels (DailyDilemmas: which values explain them)",
        description="Analyse the labels of a finished run. DailyDilemmas: for each value, "
        "how often the chosen action carries it and the rejected one does not (and the "
        "reverse), with a sign test and Holm / Benjamini-Hochberg corrections, overall "
        "and by topic group. Writes RUN_DIR/analysis.md and RUN_DIR/analysis.json.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory written by `icm run`")
    add_option(p, "data_dir", help="where the testbed's data is (default: the run's own data dir)")
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)"
    )
    p.add_argument(
        "--min-discordant",
        type=int,
        default=6,
        help="test a value only with at least this many decisions where exactly one action "
        "carries it (default 6, the least that can reach p < 0.05)",
    )
    p.add_argument("--top", type=int, default=25, help="value rows to print (all are in the files)")
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    from icm.analysis import analyze_run
    from icm.analysis.daily_dilemmas import render_markdown

    data_dir = Path(args.data_dir) if args.data_dir else None
    result, _ = analyze_run(
        args.run_dir, data_dir=data_dir, alpha=args.alpha, min_discordant=args.min_discordant
    )
    print(render_markdown(result, top=args.top), end="")
    print(f"\nwrote {args.run_dir / 'analysis.md'} and {args.run_dir / 'analysis.json'}")
    if result.get("warning"):
        print(f"WARNING: {result['warning']}", file=sys.stderr)
    return 0
