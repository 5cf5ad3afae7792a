"""The argparse arguments of the `icm` commands, made from each option's one declaration
(icm.option.Option) on a config's field: RunConfig (RUN_OPTIONS, the default table here),
EvalConfig (icm.evaluate.EVAL_OPTIONS), ReplicateConfig and FinetuneConfig. A command adds
an option by its field name; it may give it another help or default where the option
means something narrower there, never another flag, type or choices. The other spelling
of each flag (--batch-size for --batch_size) is added by icm.cli.add_spelling_aliases."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from icm.config import RUN_OPTIONS, SYNTHETIC_HELP
from icm.option import Option

# Titles of the option groups listed apart in --help; the other groups' options are
# listed among the command's own.
GROUP_TITLES = {
    "search": "search (the original code's flags and defaults)",
    "icm-search": "icm's search options",
    "preset": "presets",
    "finetune": "iterative fine-tuning (needs the 'finetune' extra)",
}
SEARCH_GROUPS = ("search", "icm-search")

_ARGPARSE_DEFAULT_TEXT = " (default: %(default)s)"


def help_text(declared: Option) -> str:
    """The help with the default, unless the default is "not given" (None, off, none),
    which the help itself explains."""
    text = declared.help.replace("%", "%%")  # argparse %-formats help
    default = declared.default
    if default is None or default is False or default == []:
        return text
    if isinstance(default, bool):
        shown = "on"
    elif isinstance(default, float):
        shown = f"{default:g}"
    else:
        shown = str(default)
    return f"{text} (default: {shown})"


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    *,
    of: Mapping[str, Option] = RUN_OPTIONS,
    **changes: Any,
) -> argparse.Action:
    """The argument of option `name` of the table `of`; `changes`: its help or default in
    this command."""
    declared = dataclasses.replace(of[name], **changes)
    default = declared.default
    kwargs: dict[str, Any] = {
        "dest": name,
        "default": list(default) if isinstance(default, list) else default,
        "help": help_text(declared),
    }
    if declared.action is not None:
        kwargs["action"] = declared.action
    if declared.parser_type() is not None:
        kwargs["type"] = declared.parser_type()
    if declared.choices:
        kwargs["choices"] = list(declared.choices)
    if declared.metavar:
        kwargs["metavar"] = declared.metavar
    action = parser.add_argument(declared.flag, **kwargs)
    # BooleanOptionalAction adds its own default text up to Python 3.13; help_text has one.
    if action.help and action.help.endswith(_ARGPARSE_DEFAULT_TEXT):
        action.help = action.help[: -len(_ARGPARSE_DEFAULT_TEXT)]
    return action


def add_options(
    parser: argparse.ArgumentParser,
    *groups: str,
    changes: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Every RunConfig option of `groups`, in declaration order, each group under its
    title (GROUP_TITLES); `changes`: per option name, its help or default here."""
    for group in groups:
        title = GROUP_TITLES.get(group)
        target = parser.add_argument_group(title) if title else parser
        for name in fields_of(group):
            add_option(target, name, **(changes or {}).get(name, {}))


def add_table(
    parser: argparse.ArgumentParser,
    table: Mapping[str, Option],
    changes: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Every option of `table` (a config's options, icm.option.options_of), in declaration
    order; `changes`: per option name, its help or default here."""
    for name in table:
        add_option(parser, name, of=table, **(changes or {}).get(name, {}))


def table_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The config fields `names` (a table of options, add_table, or field names), as
    parsed."""
    return {name: getattr(args, name) for name in names}


def fields_of(*groups: str) -> tuple[str, ...]:
    """The RunConfig fields whose options are in `groups`."""
    return tuple(name for name, o in RUN_OPTIONS.items() if o.group in groups)


def add_search_options(p: argparse.ArgumentParser, *, seed_help: str | None = None) -> None:
    """The search flags of `icm run`, for every command that runs the search, so that one
    flag means one thing everywhere."""
    add_options(p, *SEARCH_GROUPS, changes={"seed": {"help": seed_help}} if seed_help else None)


def add_model_options(p: argparse.ArgumentParser, *, synthetic: bool = True) -> None:
    """The model flags; `synthetic`: the command takes --model synthetic (only icm run)."""
    model_help = RUN_OPTIONS["model"].help
    if not synthetic:
        model_help = model_help.replace(SYNTHETIC_HELP, "")
    add_options(p, "model", changes={"model": {"help": model_help}})


def search_fields() -> tuple[str, ...]:
    """The RunConfig fields add_search_options declares."""
    return fields_of(*SEARCH_GROUPS)


def config_values(args: argparse.Namespace, *groups: str) -> dict[str, Any]:
    """The RunConfig fields of the options of `groups`, as parsed."""
    values = table_values(args, fields_of(*groups))
    if "base_url" in values:
        values["base_url"] = list(values["base_url"])
    return values


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields set by add_search_options."""
    return config_values(args, *SEARCH_GROUPS)


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields set by add_model_options."""
    return config_values(args, "model")


def data_dir_of(args: argparse.Namespace) -> Path | None:
    value = getattr(args, "data_dir", None) or os.environ.get("ICM_DATA_DIR")
    return Path(value) if value else None
