"""icm run: label a testbed with ICM (the paper's Algorithm 1), into a run directory."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icm.cli.options import (
    add_model_options,
    add_search_options,
    add_testbed_options,
    data_dir_of,
    model_options,
    search_options,
)
from icm.config import PRESETS, RunConfig
from icm.errors import ConfigError
from icm.presets import with_preset


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run",
        help="label a testbed with ICM",
        description="Label claims with ICM (Wen et al. 2025, Algorithm 1).",
    )
    add_testbed_options(run)
    add_search_options(run)
    d = RunConfig()
    h = run.add_argument_group("presets")
    h.add_argument(
        "--preset",
        default=None,
        type=str.lower,
        choices=sorted(PRESETS),
        help="original: everything as the original code does it (its algorithm, exact MP, "
        "its consistency keys, trailing space kept, seeds at the batch start, one batch of "
        "256 claims, alpha 30); flags given explicitly override it",
    )
    add_model_options(run)
    f = run.add_argument_group("iterative fine-tuning (needs the 'finetune' extra)")
    f.add_argument(
        "--iterative",
        action="store_true",
        help="the paper's loop: label batch 1 with the base model, then each next batch with "
        "the base model fine-tuned (LoRA) on the labels of all batches before it; models are "
        "scored in process (transformers) and kept in RUN_DIR/models/",
    )
    f.add_argument(
        "--finetune-epochs",
        dest="finetune_epochs",
        type=float,
        default=d.finetune_epochs,
        help=f"epochs of each fine-tuning round (default {d.finetune_epochs:g})",
    )
    f.add_argument(
        "--finetune-lr",
        dest="finetune_lr",
        type=float,
        default=d.finetune_lr,
        help=f"learning rate of each fine-tuning round (default {d.finetune_lr:g})",
    )
    f.add_argument(
        "--lora-r",
        dest="lora_r",
        type=int,
        default=d.lora_r,
        help=f"LoRA rank (default {d.lora_r})",
    )
    run.add_argument("--out", default=None, help="run directory (default runs/<testbed>-<time>)")
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a stopped run from its last checkpoint (flags given too must match it)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--checkpoint-every",
        "--checkpoint_every",
        dest="checkpoint_every",
        type=float,
        default=RunConfig().checkpoint_every,
        metavar="SECONDS",
        help="save the search state at most this often within a batch (default "
        f"{RunConfig().checkpoint_every:g}; 0: every step); finished batches and a stop "
        "are always saved, and a kill costs at most these seconds of work",
    )
    run.set_defaults(handler=cmd_run, run_parser=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = RunConfig(
        testbed=args.testbed,
        split=args.split,
        size=args.size,
        data_dir=str(data_dir_of(args)) if data_dir_of(args) else None,
        consistency=args.consistency,
        iterative=args.iterative,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        lora_r=args.lora_r,
        out=args.out,
        checkpoint_every=args.checkpoint_every,
        **search_options(args),
        **model_options(args),
    )
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
