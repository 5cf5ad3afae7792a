"""The `icm` command line: one module per command in this package, each with
register(subparsers) -> None, listed in COMMAND_MODULES.

    icm run        label a testbed with ICM (the paper's Algorithm 1), into a run directory
    icm testbeds   list the testbeds with sizes and data sources
    icm show       print a few rendered claims of a testbed
    icm plot       plot the search trace of a run

and cache, eval, replicate, serve, data, analyze, export, finetune.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from icm.errors import IcmError

# Modules that add subcommands, in the order `icm --help` lists them: each has
# register(subparsers) -> None.
COMMAND_MODULES: tuple[str, ...] = (
    "icm.cli.run",  # icm run
    "icm.cli.testbeds",  # icm testbeds, icm show
    "icm.cli.plot",  # icm plot
    "icm.cli.cache",  # icm cache stats|clear
    "icm.cli.eval",  # icm eval
    "icm.cli.replicate",  # icm replicate
    "icm.cli.serve",  # icm serve
    "icm.cli.data",  # icm data fetch
    "icm.cli.analyze",  # icm analyze
    "icm.cli.export",  # icm export
    "icm.cli.finetune",  # icm finetune
)

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and one clear line, like every icm error, and takes
    options only as spelt in full: with abbreviations, `icm run --k 5` silently meant
    --keep-trailing-space. An unknown option is named with the nearest known one.
    (Subcommand parsers are of this class too.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"icm: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = _command_parser(self, parsed)
            unknown = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
            if not unknown:
                command.error(f"unrecognized arguments: {' '.join(extras)}")
            command.error(
                "; ".join(f"{command.prog}: {unknown_option(command, o)}" for o in unknown)
            )
        return parsed


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)command parser that parsed `args`: `icm data list`'s for `icm data list`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest or "", None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def unknown_option(parser: argparse.ArgumentParser, option: str) -> str:
    """'unknown option --concurency (did you mean --concurrency?)'."""
    # Compared without the "--" every option shares (it made --bat look like --out), in
    # lower case (--k for --K); an option that begins with it counts too (--bat, --batch_size).
    known = {o[2:].lower(): o for o in parser._option_string_actions if o.startswith("--")}
    typed = option.lstrip("-").lower()
    nearest = difflib.get_close_matches(typed, list(known), n=1)
    nearest = nearest or [body for body in known if body.startswith(typed)][:1]
    hint = f" (did you mean {known[nearest[0]]}?)" if nearest else ""
    return f"unknown option {option}{hint}"


def add_spelling_aliases(parser: argparse.ArgumentParser) -> None:
    """Give every multi-word option both spellings, --batch-size and --batch_size (the
    original code's flags use underscores, icm's dashes), in this parser and its
    subcommands. The dashed spelling is in lower case: --initial-t for --initial_T. This is
    the only place the second spelling comes from: an option declared with both is an
    error."""
    for action in list(parser._actions):
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                add_spelling_aliases(sub)
            continue
        for option in [o for o in action.option_strings if o.startswith("--")]:
            if isinstance(action, argparse.BooleanOptionalAction) and option.startswith("--no-"):
                continue  # it reads its value off the "--no-" prefix: an alias would mean yes
            body = option[2:]
            if "-" in body:
                alias = "--" + body.replace("-", "_")
            elif "_" in body:
                alias = "--" + body.replace("_", "-").lower()
            else:
                continue  # one word: one spelling
            if alias in action.option_strings:
                raise ValueError(f"{action.option_strings}: declare one spelling, not both")
            taken = parser._option_string_actions.get(alias)
            if taken is not None:
                raise ValueError(f"{alias} would be both {option} and {taken.option_strings}")
            action.option_strings = [*action.option_strings, alias]
            parser._option_string_actions[alias] = action


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="icm", description="Internal Coherence Maximization with a C++ core.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    add_spelling_aliases(parser)
    return parser


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
    finally:
        # A failed call's traceback holds the core's objects (the scorer, its requests) in
        # reference cycles; collected now, not left for nanobind to report as leaks when
        # the interpreter exits.
        gc.collect()


def _os_error_line(e: OSError) -> str:
    """'PATH: what went wrong (ExceptionType)': the type is kept, so that a bug that
    surfaces as an OSError is still recognisable as one."""
    what = e.strerror or str(e)
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    where = " -> ".join(paths) + ": " if paths else ""
    return f"{where}{what} ({type(e).__name__})"


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
