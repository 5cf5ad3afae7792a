"""icm run: label a testbed with ICM (the paper's Algorithm 1), into a run directory."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icm.cli.options import add_model_options, add_options, add_search_options, data_dir_of
from icm.config import RUN_OPTIONS, RunConfig
from icm.errors import ConfigError
from icm.presets import with_preset


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run",
        help="label a testbed with ICM",
        description="Label claims with ICM (Wen et al. 2025, Algorithm 1).",
    )
    add_options(run, "testbed")
    add_search_options(run)
    add_options(run, "preset")
    add_model_options(run)
    add_options(run, "finetune", "run")
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a stopped run from its last checkpoint (flags given too must match it)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run, run_parser=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = {name: getattr(args, name) for name in RUN_OPTIONS if hasattr(args, name)}
    data_dir = data_dir_of(args)
    values.update(data_dir=str(data_dir) if data_dir else None, base_url=list(args.base_url))
    cfg = RunConfig(**values)
    if args.preset:
        argv = args.argv[args.argv.index("run") + 1 :] if "run" in args.argv else []
        cfg = with_preset(cfg, args.preset, set(explicit_options(args.run_parser, argv)))
    cfg.validate()
    return cfg


def explicit_options(run_parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The `icm run` options given on the command line (not left at their defaults)."""
    saved = [(a, a.default) for a in run_parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        given = vars(run_parser.parse_args(list(argv)))
    finally:
        for action, default in saved:
            action.default = default
    fields = set(RunConfig().to_dict())
    given = {k: v for k, v in given.items() if k in fields}
    if "base_url" in given:
        given["base_url"] = list(given["base_url"])
    return given


def cmd_run(args: argparse.Namespace) -> int:
    from icm.run import resume_run, start_run

    if args.resume is not None:
        argv = args.argv[args.argv.index("run") + 1 :]
        overrides = explicit_options(args.run_parser, argv)
        if not (args.resume / "config.json").exists():
            raise ConfigError(
                f"--resume: '{args.resume}' is not an icm run directory (no config.json)"
            )
        run_dir = resume_run(args.resume, overrides, progress=not args.quiet)
    else:
        cfg = config_from_args(args)
        run_dir = start_run(cfg, progress=not args.quiet, argv=list(args.argv))
    print(str(run_dir))
    return 0
