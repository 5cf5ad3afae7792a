"""A command-line option declared once: its flag, help, choices, default and range,
written beside the setting it sets, a field of a config dataclass (RunConfig, EvalConfig,
ReplicateConfig, FinetuneConfig), through `option()`. icm.cli.options makes the argparse
arguments from it; the config takes its default from the same declaration, and
`check_ranges` its bounds. A setting that another command takes too, with a narrower
meaning there, reuses the declaration with `option_like()`: same flag, type, choices and
range; only its help or default may differ."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from icm.errors import ConfigError

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
    # The range a value must lie in, wherever it comes from (the command line, a config
    # file, the API): [low, high], or (low, high] where `low_excluded`. None: unbounded.
    low: float | None = None
    high: float | None = None
    low_excluded: bool = False

    def check(self, value: Any) -> str | None:
        """Why `value` is out of this option's range or choices, or None if it is not."""
        if value is None or isinstance(value, bool):
            return None
        if self.choices and value not in self.choices:
            return f"must be {one_of(self.choices)}, got '{value}'"
        if not isinstance(value, int | float) or (self.low is None and self.high is None):
            return None
        # A real-valued option must be a finite number (an infinite alpha or temperature
        # makes U infinite and every move look equal).
        real = self.type is float or isinstance(self.default, float)

        def text(x: float) -> str:
            return f"{x:g}" if real else str(int(x))

        shown = f"{value:g}" if real else str(value)
        finite = "finite and " if real else ""
        if self.low is not None:
            op = ">" if self.low_excluded else ">="
            below = not value > self.low if self.low_excluded else not value >= self.low
            if below or (real and not math.isfinite(value)):
                return f"must be {finite}{op} {text(self.low)}, got {shown}"
        if self.high is not None and not value <= self.high:
            return f"must be at most {text(self.high)}, got {shown}"
        return None

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
    low: float | None = None,
    high: float | None = None,
    low_excluded: bool = False,
) -> Any:
    """A dataclass field whose default is `default` and whose metadata["option"] is its
    Option. A list default is copied for each instance."""
    return _field(
        Option(flag, help, default, group, choices, type, action, metavar, low, high, low_excluded)
    )


def option_like(declared: Option, **changes: Any) -> Any:
    """A dataclass field declared by another config's option, with `changes` to its help,
    default or group where the setting means something narrower in this config (eval's
    --seed orders demonstrations; run's seeds the search), or to its flag where this
    command names another command's setting (`icm run --finetune-epochs` is `icm
    finetune --epochs`). Type, choices and range stay the declaration's."""
    unchanged = set(changes) - {"help", "default", "group", "flag"}
    if unchanged:
        raise TypeError(f"option_like: {declared.flag} keeps its {', '.join(sorted(unchanged))}")
    return _field(dataclasses.replace(declared, **changes))


def _field(declared: Option) -> Any:
    metadata = {"option": declared}
    default = declared.default
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def options_of(cls: type) -> dict[str, Option]:
    """The Options of a dataclass's fields, by field name, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


def check_ranges(config: Any) -> None:
    """ConfigError, naming the flag, for the first field of `config` outside its declared
    range or choices. argparse checks a flag's choices; a config file's or the API's value
    comes here unchecked, and the core holds integers in fixed widths (out of range, its
    binding would raise a TypeError instead of naming the flag)."""
    for name, declared in options_of(type(config)).items():
        why = declared.check(getattr(config, name))
        if why is not None:
            raise ConfigError(f"{declared.flag}: {why}")


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
