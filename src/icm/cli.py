"""The `icm` command line.

    icm run        label a testbed with ICM (the paper's Algorithm 1), into a run directory
    icm testbeds   list the testbeds with sizes and data sources
    icm show       print a few rendered claims of a testbed
    icm plot       plot the search trace of a run

Other commands (serve, data, eval, ...) register themselves from their own modules,
listed in COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from icm.config import PRESETS, RunConfig
from icm.errors import ConfigError, IcmError

# Modules that add subcommands: each has register(subparsers) -> None.
COMMAND_MODULES: tuple[str, ...] = (
    "icm.backends.cache_cli",  # icm cache stats|clear
    "icm.eval_cli",  # icm eval
    "icm.report.replicate_cli",  # icm replicate
    "icm.backends.serve_cli",  # icm serve
    "icm.data_cli",  # icm data fetch
    "icm.analysis.cli",  # icm analyze
    "icm.export_cli",  # icm export
    "icm.finetune_cli",  # icm finetune
)

Handler = Callable[[argparse.Namespace], int]

DATA_DIR_HELP = "folder with external dataset files (default: $ICM_DATA_DIR)"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and one clear line, like every icm error, and takes
    options only as spelt in full: with abbreviations, `icm run --k 5` silently meant
    --keep-trailing-space. (Subcommand parsers are of this class too.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"icm: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_spelling_aliases(parser: argparse.ArgumentParser) -> None:
    """Give every multi-word option both spellings, --batch-size and --batch_size (the
    original code's flags use underscores, icm's dashes), in this parser and its
    subcommands."""
    for action in list(parser._actions):
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                add_spelling_aliases(sub)
            continue
        long = [o for o in action.option_strings if o.startswith("--")]
        if any("-" in o[2:] for o in long) and any("_" in o[2:] for o in long):
            continue  # both spellings given by hand (e.g. --consistency_fix_K, -k)
        for option in long:
            body = option[2:]
            alias = "--" + (body.replace("-", "_") if "-" in body else body.replace("_", "-"))
            if alias == option:
                continue
            taken = parser._option_string_actions.get(alias)
            if taken is not None and taken is not action:
                raise ValueError(f"{alias} would be both {option} and {taken.option_strings}")
            action.option_strings = [*action.option_strings, alias]
            parser._option_string_actions[alias] = action


def _positive_int(text: str) -> int:
    """An int >= 1 (a negative count would slice from the end, silently)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return n


def _int_or_all(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of claims or 'all', got '{text}'"
        ) from None
    if n < 1:  # 0 once meant "all": refused rather than read either way
        raise argparse.ArgumentTypeError(
            f"must be >= 1, got {text} (use --size all for the whole split)"
        )
    return n


def add_testbed_options(p: argparse.ArgumentParser, *, size_default: int | None = 16) -> None:
    p.add_argument(
        "--testbed",
        default="capitals",
        help="testbed name (see `icm testbeds`) or a path to claims .jsonl/.csv",
    )
    p.add_argument("--split", default="train", help="which split to label (default: train)")
    p.add_argument(
        "--size",
        type=_int_or_all,
        default=size_default,
        help="claims to label, in whole consistency groups ('all' = the whole split; "
        f"default {size_default})",
    )
    p.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        default=None,
        help=DATA_DIR_HELP,
    )
    p.add_argument(
        "--consistency",
        default="default",
        choices=["default", "none", "paper"],
        help="default: relations true by construction; none; paper: the original code's "
        "keys (for truthfulqa they are derived from gold labels, and the run says so)",
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="embedded",
        help="'embedded' (local llama.cpp server with the packaged base model), "
        "'synthetic' (a stand-in scorer for algorithm checks, NOT a language model), "
        "or the model name to send to --base-url",
    )
    p.add_argument(
        "--base-url",
        "--base_url",
        dest="base_url",
        action="append",
        default=[],
        help="OpenAI-compatible server (repeat to spread requests over several)",
    )
    p.add_argument(
        "--model-path",
        "--model_path",
        dest="model_path",
        default=None,
        help="a local GGUF file for the embedded llama.cpp server, or a Hugging Face model "
        "folder or an `icm finetune` output folder (scored in process by transformers; "
        "needs the finetune extra)",
    )
    p.add_argument(
        "--logprobs", type=int, default=20, help="top-k logprobs to request (default 20)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument(
        "--cache",
        default="default",
        help="response cache: a SQLite path, 'off', or 'default' ($ICM_CACHE_DIR or "
        "~/.cache/icm/responses.sqlite)",
    )
    p.add_argument(
        "--keep-trailing-space",
        dest="keep_trailing_space",
        action="store_true",
        help="send prompts ending in 'is ' unchanged (the original code); by default the "
        "trailing space is dropped, see docs/algorithm.md",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="icm", description="Internal Coherence Maximization with a C++ core.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="label a testbed with ICM",
        description="Label claims with ICM (Wen et al. 2025, Algorithm 1).",
    )
    add_testbed_options(run)
    d = RunConfig()
    g = run.add_argument_group("search (the original code's flags and defaults)")
    g.add_argument(
        "--alpha",
        type=float,
        default=d.alpha,
        help="weight of MP against inconsistencies (default: the paper's balance for the "
        "batch actually used, 30 * N / 256 for N claims per batch; --alpha 30 is the "
        "original code's value, see docs/algorithm.md)",
    )
    g.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    g.add_argument(
        "--batch_size",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=d.batch_size,
        help=f"claims per independent search batch (default {d.batch_size})",
    )
    g.add_argument(
        "--num_seed",
        "--num-seed",
        dest="num_seed",
        type=int,
        default=d.num_seed,
        help=f"claims given random initial labels (default {d.num_seed})",
    )
    g.add_argument(
        "--K", type=int, default=d.K, help=f"search iterations per batch (default {d.K})"
    )
    g.add_argument(
        "--consistency_fix_K",
        "--consistency-fix-k",
        dest="consistency_fix_K",
        type=int,
        default=d.consistency_fix_K,
        help=f"ConsistencyFix rounds (default {d.consistency_fix_K})",
    )
    g.add_argument(
        "--decay", type=float, default=d.decay, help=f"exp schedule decay (default {d.decay})"
    )
    g.add_argument(
        "--initial_T",
        "--initial-t",
        dest="initial_T",
        type=float,
        default=d.initial_T,
        help=f"initial temperature (default {d.initial_T:g})",
    )
    g.add_argument(
        "--final_T",
        "--final-t",
        dest="final_T",
        type=float,
        default=d.final_T,
        help=f"final temperature (default {d.final_T:g})",
    )
    g.add_argument(
        "--scheduler",
        default=d.scheduler,
        help="log: T = initial_T / (1 + beta ln(1 + n)) with beta 0.99 under --algorithm "
        "paper (the default), 2 under --algorithm code as in the original (--log-beta sets "
        "it; --decay is not used); exp: T = initial_T * decay^n. Both floored at final_T "
        "(default log)",
    )
    h = run.add_argument_group("icm's options")
    h.add_argument(
        "--preset",
        default=None,
        type=str.lower,
        choices=sorted(PRESETS),
        help="original: everything as the original code does it (its algorithm, exact MP, "
        "its consistency keys, trailing space kept, seeds at the batch start, one batch of "
        "256 claims, alpha 30); flags given explicitly override it",
    )
    h.add_argument(
        "--algorithm",
        default=d.algorithm,
        help="paper: Algorithms 1-2 as written; code: the original code's behaviour "
        "where it differs (docs/algorithm.md)",
    )
    h.add_argument(
        "--log-beta",
        "--log_beta",
        dest="log_beta",
        type=float,
        default=None,
        help="beta of the log schedule (default 0.99 paper, 2 code)",
    )
    h.add_argument(
        "--mp",
        default=d.mp,
        help="exact: every labeled claim in context (the original); sparse: a fixed "
        f"random context of --context-k claims (default {d.mp})",
    )
    h.add_argument(
        "--context-k",
        "--context_k",
        dest="context_k",
        type=int,
        default=d.context_k,
        help=f"demonstrations per claim with --mp sparse (default {d.context_k})",
    )
    h.add_argument(
        "--mp-objective",
        "--mp_objective",
        dest="mp_objective",
        default=d.mp_objective,
        help="mean-gap (original code) | sum-logprob (paper text)",
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
    run.set_defaults(handler=cmd_run)
    parser.set_defaults(run_parser=run)

    tb = sub.add_parser("testbeds", help="list the testbeds")
    tb.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, help=DATA_DIR_HELP)
    tb.set_defaults(handler=cmd_testbeds)

    show = sub.add_parser("show", help="print rendered claims of a testbed")
    show.add_argument("testbed", help="testbed name (see `icm testbeds`) or a claims file")
    show.add_argument("-n", type=_positive_int, default=4, help="how many claims (default 4)")
    show.add_argument("--split", default="train", help="which split (default: train)")
    show.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, help=DATA_DIR_HELP)
    show.add_argument(
        "--consistency",
        default="default",
        choices=["default", "none", "paper"],
        help="which consistency relations to list (as for icm run; default: default)",
    )
    show.add_argument("--gold", action="store_true", help="also print gold labels")
    show.set_defaults(handler=cmd_show)

    plot = sub.add_parser("plot", help="plot the search trace of a run")
    plot.add_argument("run_dir", type=Path, help="an icm run directory")
    plot.add_argument("--out", type=Path, default=None, help="PNG path (default RUN_DIR/trace.png)")
    plot.set_defaults(handler=cmd_plot)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    add_spelling_aliases(parser)
    return parser


def data_dir_of(args: argparse.Namespace) -> Path | None:
    value = getattr(args, "data_dir", None) or os.environ.get("ICM_DATA_DIR")
    return Path(value) if value else None


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = RunConfig(
        testbed=args.testbed,
        split=args.split,
        size=args.size,
        data_dir=str(data_dir_of(args)) if data_dir_of(args) else None,
        consistency=args.consistency,
        alpha=args.alpha,
        seed=args.seed,
        batch_size=args.batch_size,
        num_seed=args.num_seed,
        K=args.K,
        consistency_fix_K=args.consistency_fix_K,
        decay=args.decay,
        initial_T=args.initial_T,
        final_T=args.final_T,
        scheduler=args.scheduler,
        algorithm=args.algorithm,
        log_beta=args.log_beta,
        mp=args.mp,
        context_k=args.context_k,
        mp_objective=args.mp_objective,
        iterative=args.iterative,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        lora_r=args.lora_r,
        out=args.out,
        checkpoint_every=args.checkpoint_every,
        **model_options(args),
    )
    if args.preset:
        argv = args.argv[args.argv.index("run") + 1 :] if "run" in args.argv else []
        cfg = cfg.with_preset(args.preset, set(explicit_options(args.run_parser, argv)))
    cfg.validate()
    return cfg


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields set by add_model_options."""
    return {
        "model": args.model,
        "base_url": list(args.base_url),
        "model_path": args.model_path,
        "logprobs": args.logprobs,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "keep_trailing_space": args.keep_trailing_space,
        "cache": args.cache,
    }


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


def cmd_testbeds(args: argparse.Namespace) -> int:
    from icm.testbeds import LoadOptions, list_testbeds

    data_dir = data_dir_of(args)
    rows: list[tuple[str, str, str, str]] = []
    for cls in list_testbeds():
        sizes = []
        for split in cls.splits:
            try:
                n = len(cls().load(split, LoadOptions(data_dir=data_dir)))
                sizes.append(f"{split} {n}")
            except IcmError:
                sizes.append(f"{split} -")
        avail = ", ".join(sizes)
        if cls.needs_data and all(s.endswith(" -") for s in sizes):
            avail = "data not found: " + cls.source
        rows.append((cls.name, avail, cls.summary, cls.source))
    width = max(len(r[0]) for r in rows)
    for name, avail, summary, source in rows:
        pad = " " * width
        print(f"{name:<{width}}  {summary}\n{pad}  claims: {avail}\n{pad}  source: {source}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from icm.testbeds import LoadOptions
    from icm.testbeds.loading import load_table

    table = load_table(
        args.testbed,
        args.split,
        LoadOptions(data_dir=data_dir_of(args), consistency=args.consistency),
    )
    for note in table.notes:
        print(f"# note: {note}")
    for c in table.claims[: args.n]:
        gold = f"   [gold: {c.gold}]" if args.gold else ""
        print(f"--- {c.id} (group {c.group or '-'}){gold}\n{c.prompt}")
        # Every relation the claim takes part in, as either end, and its group constraints.
        for line in table.relations_of(c.id) or ["none"]:
            print(f"  relation: {line}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from icm.report.trace_plot import plot_trace
    from icm.run_dir import read_json_object, read_jsonl

    trace_path = args.run_dir / "trace.jsonl"
    if not trace_path.exists():
        raise ConfigError(f"{args.run_dir}: no trace.jsonl (is this an icm run directory?)")
    metrics_path = args.run_dir / "metrics.json"  # testbed, model and N for the title
    metrics = read_json_object(metrics_path) if metrics_path.exists() else {}
    out = plot_trace(
        read_jsonl(trace_path),
        args.out or args.run_dir / "trace.png",
        title=str(args.run_dir),
        testbed=metrics.get("testbed"),
        model=metrics.get("model"),
        n_claims=metrics.get("n_claims"),
    )
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.version:
        from icm import __version__

        print(__version__)
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # SIGTERM ends a run like Ctrl-C does: the step in flight is abandoned, state kept.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return int(args.handler(args))
    except IcmError as e:
        print(f"icm: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # std::invalid_argument from the core names its field
        print(f"icm: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `icm show ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no 2nd error at exit
        return 141  # as if killed by SIGPIPE, like other command-line tools
    except OSError as e:  # the file system said no: permissions, a full disk, a directory
        print(f"icm: error: {_os_error_line(e)}", file=sys.stderr)
        return 1
    except OverflowError as e:  # a number too large for the core; named, with its type
        print(f"icm: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("icm: interrupted", file=sys.stderr)
        return 130


def _os_error_line(e: OSError) -> str:
    """'PATH: what went wrong (ExceptionType)': the type is kept, so that a bug that
    surfaces as an OSError is still recognisable as one."""
    what = e.strerror or str(e)
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    where = " -> ".join(paths) + ": " if paths else ""
    return f"{where}{what} ({type(e).__name__})"


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
