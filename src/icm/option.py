"""A command-line option declared once: its flag, help, choices and default, written
beside the setting it sets (a RunConfig field, through `option()`) or in a command's own
table. icm.cli.options makes the argparse arguments from it, and RunConfig takes its
defaults and choices from the same declaration."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# An argparse action class (BooleanOptionalAction); named here because `type` is also a
# field of Option.
ActionClass = type[argparse.Action]


@dataclass(frozen=True)
class Option:
    """One option. `flag` is spelt as --help shows it (the original code's flags with an
    underscore, icm's with dashes); the command line takes the other spelling too."""

    flag: str
    help: str
    default: Any = None
    # The argparse group the option is listed under (icm.cli.options.GROUP_TITLES).
    group: str = ""
    choices: tuple[str, ...] | None = None
    # Parses the text given on the command line; None: from the default (int, float, str).
    type: Callable[[str], Any] | None = None
    # argparse's action, for the options that take no value or repeat.
    action: str | ActionClass | None = None
    metavar: str | None = None

    def parser_type(self) -> Callable[[str], Any] | None:
        if self.type is not None or self.action is not None:
            return self.type
        if isinstance(self.default, bool):
            return None
        return type(self.default) if isinstance(self.default, int | float) else None


def option(
    flag: str,
    default: Any,
    *,
    help: str,
    group: str,
    choices: tuple[str, ...] | None = None,
    type: Callable[[str], Any] | None = None,
    action: str | ActionClass | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field whose default is `default` and whose metadata["option"] is its
    Option. A list default is copied for each instance."""
    declared = Option(flag, help, default, group, choices, type, action, metavar)
    metadata = {"option": declared}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def options_of(cls: type) -> dict[str, Option]:
    """The Options of a dataclass's fields, by field name, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


def one_of(choices: tuple[str, ...]) -> str:
    """'a' or 'b'; 'a', 'b' or 'c'."""
    quoted = [f"'{c}'" for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def positive_int(text: str) -> int:
    """An int >= 1 (a negative count would slice from the end, silently)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return n


def int_or_all(text: str) -> int | None:
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
