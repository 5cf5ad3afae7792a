"""`icm replicate`: run ICM and every baseline on testbeds over seeds; write report.md and
figure.png (see icm.replicate and icm.report.replicate_report)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from icm.cli.options import (
    add_model_options,
    add_search_options,
    add_table,
    data_dir_of,
    model_options,
    search_options,
    table_values,
)
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.replicate import REPLICATE_OPTIONS, ReplicateConfig, run_replicate
from icm.report.replicate_report import plot_report, write_report
from icm.run_dir import now_iso


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    p = sub.add_parser(
        "replicate",
        help="ICM vs baselines on held-out test splits, over seeds",
        description="Run ICM and every baseline on each testbed over several seeds, evaluate "
        "each on held-out test claims, and write report.md and figure.png to --out.",
    )
    p.add_argument(
        "--testbeds",
        required=True,
        help="comma-separated testbed names, e.g. arithmetic,truthfulqa,gsm8k,alpaca",
    )
    add_table(p, REPLICATE_OPTIONS)
    add_search_options(p, seed_help="base seed: seed i of --seeds uses seed + i")
    add_model_options(p, synthetic=False)
    p.set_defaults(handler=cmd_replicate)


def cmd_replicate(args: argparse.Namespace) -> int:

    if args.model == "synthetic":
        raise ConfigError("--model synthetic: replicate evaluates a language model")
    run = RunConfig(
        **search_options(args),
        **model_options(args),
        test_fraction=args.test_fraction,
    )
    run.validate()
    data_dir = data_dir_of(args)
    cfg = ReplicateConfig(
        testbeds=[t.strip() for t in args.testbeds.split(",") if t.strip()],
        **table_values(args, REPLICATE_OPTIONS),
        run=run,
    )
    cfg.data_dir = str(data_dir) if data_dir else None  # $ICM_DATA_DIR when not given
    started = time.monotonic()
    cells = run_replicate(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    model = args.model_path or (
        args.model if args.base_url else "gemma-3-270m (base, Q4_K_M), embedded llama.cpp"
    )
    report = write_report(
        cfg,
        cells,
        command="icm " + shlex.join(args.argv),
        wall_seconds=time.monotonic() - started,
        model=model,
        date=now_iso(),
    )
    figure = plot_report(cfg, cells, model=model)
    warned = sum(bool(c.details.get("warnings")) for c in cells)
    if warned:
        print(
            f"WARNING: {warned} of {len(cells)} results rest on a degenerate or inconsistent "
            f"labelling or on one-sided predictions: see the Warnings in {report}",
            file=sys.stderr,
        )
    print(report)
    print(figure)
    return 0
