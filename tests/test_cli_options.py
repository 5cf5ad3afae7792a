"""Each command-line option is declared once (name, help, choices, default), and the
argparse flags and RunConfig's defaults both come from that declaration."""

from __future__ import annotations

import argparse
import ast
import re
from collections import Counter
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from tests.test_cli import all_parsers, options

SRC = Path(__file__).resolve().parent.parent / "src" / "icm"

# Flags that name a different thing in each command that declares them, so that one
# declaration could not serve them all.
OWN_MEANING_FLAGS = {
    "--out": "the output of each command (a run dir, eval.json's folder, a GGUF file...)",
    "--labels": "eval: a label source; finetune: icm or gold",
    "--alpha": "run: MP's weight; analyze: a significance level",
    "--batch-size": "run: claims per search batch; finetune: examples per training step",
    "--cache": "run: the response cache; data fetch: the download folder",
}


def run_parser() -> argparse.ArgumentParser:
    return dict(all_parsers())["icm run"]


def declared_flags(path: Path) -> list[str]:
    """Every option string written in `path`: in add_argument(...) calls and in option
    declarations (option(...) / Option(...)), both spellings counted as one name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in ("add_argument", "option", "Option"):
            continue
        values = [*node.args, *(k.value for k in node.keywords if k.arg == "flag")]
        for arg in values:
            is_text = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            if is_text and re.fullmatch(r"--[A-Za-z][\w-]*", arg.value):
                found.append("--" + arg.value[2:].replace("_", "-").lower())
    return found


def test_every_flag_is_declared_once() -> None:
    """--data-dir was declared in six modules, and 23 flags were spelt both ways by hand
    (the alias pass gives the other spelling)."""
    # llama_server.py parses the command line of the llama.cpp child process icm starts,
    # not of icm.
    files = [p for p in sorted(SRC.rglob("*.py")) if p.name != "llama_server.py"]
    counts = Counter(flag for path in files for flag in declared_flags(path))
    assert counts["--data-dir"] == 1 and counts["--batch-size"] >= 1
    twice = {f: n for f, n in counts.items() if n > 1 and f not in OWN_MEANING_FLAGS}
    assert not twice, f"declared more than once: {twice}"


def test_run_config_defaults_are_the_flags_defaults() -> None:
    """Every `icm run` flag that sets a RunConfig field is that field's declaration: its
    default, help and choices are the field's."""
    from icm.config import RunConfig

    config = {f.name: f for f in fields(RunConfig)}
    flags = {a.dest: a for a in options(run_parser()) if a.dest in config}
    assert len(flags) == len(fields(RunConfig)) - 3  # test_fraction(_seed), context_regrow
    for name, action in flags.items():
        declared = config[name].metadata.get("option")
        assert declared is not None, f"{name}: RunConfig field without its option declaration"
        default = config[name].default
        if default is MISSING:
            default = config[name].default_factory()  # type: ignore[misc]
        assert action.default == default == getattr(RunConfig(), name), name
        assert action.option_strings[0] == declared.flag, name
        assert action.choices == (list(declared.choices) if declared.choices else None), name


@pytest.mark.parametrize(
    ("flag", "shown"),
    [
        ("--consistency", "{default,none,paper}"),
        ("--scheduler", "{log,exp}"),
        ("--algorithm", "{paper,code}"),
        ("--mp", "{exact,sparse}"),
        ("--mp-objective", "{mean-gap,sum-logprob}"),
        ("--batch_size", "(default: 256)"),
        ("--concurrency", "(default: 4)"),
        ("--initial_T", "(default: 10)"),
    ],
)
def test_help_shows_choices_and_defaults(flag: str, shown: str) -> None:
    _usage, options_part = run_parser().format_help().split("\n\n", 1)
    text = " ".join(options_part.split())
    at = text.index(f"{flag} ")
    assert shown in text[at : at + 400], text[at : at + 400]


def test_a_bad_choice_is_refused_by_argparse_and_by_validate() -> None:
    """argparse checks the flag; validate() still checks a config file's or the API's value."""
    from icm.config import RunConfig
    from icm.errors import ConfigError

    with pytest.raises(SystemExit):
        run_parser().parse_args(["--scheduler", "cosine"])
    with pytest.raises(ConfigError, match=r"--scheduler: must be 'log' or 'exp', got 'cosine'"):
        RunConfig(scheduler="cosine").validate()
    with pytest.raises(ConfigError, match=r"--mp-objective: must be 'mean-gap' or 'sum-logp"):
        RunConfig(mp_objective="sum").validate()


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["run", "--concurency", "3"],
            "icm run: unknown option --concurency (did you mean --concurrency?)",
        ),
        (
            ["run", "--batchsize=3"],
            "icm run: unknown option --batchsize (did you mean --batch_size?)",
        ),
        (["eval", "--labels", "x", "--xyzzy"], "icm eval: unknown option --xyzzy"),
        (["run", "--bat", "4"], "icm run: unknown option --bat (did you mean --batch_size?)"),
        (
            ["data", "list", "--chek"],
            "icm data list: unknown option --chek (did you mean --check?)",
        ),
    ],
)
def test_an_unknown_option_names_the_nearest_one(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from icm.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"icm: error: {line}"


def test_every_command_has_a_description() -> None:
    parsers = all_parsers()
    assert len(parsers) > 12
    for name, parser in parsers:
        assert parser.description, f"{name}: no description"


def test_the_alias_pass_is_the_only_second_spelling() -> None:
    from icm.cli import add_spelling_aliases

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", "--data_dir")
    with pytest.raises(ValueError, match="declare one spelling, not both"):
        add_spelling_aliases(parser)


def test_the_dashed_spellings_of_the_original_flags_are_lower_case() -> None:
    """--initial-t, --final-t and --consistency-fix-k were spelt by hand before the alias
    pass gave them."""
    from icm.cli import build_parser

    args = build_parser().parse_args(
        ["run", "--initial-t", "3", "--final-t", "0.5", "--consistency-fix-k", "2"]
    )
    assert (args.initial_T, args.final_T, args.consistency_fix_K) == (3.0, 0.5, 2)


def config_field_defaults(cls: type) -> dict[str, object]:
    from dataclasses import MISSING

    out: dict[str, object] = {}
    for f in fields(cls):
        if "option" in f.metadata:
            default = f.default
            if default is MISSING:
                default = f.default_factory()  # type: ignore[misc]
            out[f.name] = default
    return out


@pytest.mark.parametrize(
    ("command", "config_path", "changed"),
    [
        # (command, config class, options whose default this command changes on purpose)
        ("icm eval", "icm.evaluate.EvalConfig", set()),
        ("icm replicate", "icm.replicate.ReplicateConfig", set()),
        # --base: the runs' model; --lora-alpha: 2 * --lora-r (both resolved in the command)
        ("icm finetune", "icm.finetune_config.FinetuneConfig", {"base", "lora_alpha"}),
    ],
)
def test_eval_replicate_and_finetune_defaults_are_their_configs(
    command: str, config_path: str, changed: set[str]
) -> None:
    """EvalConfig, ReplicateConfig and FinetuneConfig wrote their defaults beside the
    flags' (--test-size 100 and --context-tokens 4096 twice, replicate's --train-size 32
    a third time): every flag of these commands that sets a config field now is that
    field's declaration, so the API and the command line cannot drift apart."""
    import importlib

    module, name = config_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    declared = config_field_defaults(cls)
    flags = {a.dest: a for a in options(dict(all_parsers())[command]) if a.dest in declared}
    assert set(declared) <= set(flags), set(declared) - set(flags)
    for field_name, default in declared.items():
        action = flags[field_name]
        option_declared = next(f for f in fields(cls) if f.name == field_name).metadata["option"]
        assert action.option_strings[0] == option_declared.flag, field_name
        if field_name in changed:
            assert action.default != default, f"{field_name}: no longer changed here"
        else:
            assert action.default == default, field_name


def test_a_setting_shared_by_two_commands_keeps_its_declaration() -> None:
    """--test-size, --context-tokens and --train-size are declared by EvalConfig;
    replicate reuses them, changing only what it may (train-size's default and help)."""
    from icm.config import RUN_OPTIONS, RunConfig
    from icm.evaluate import EVAL_OPTIONS
    from icm.finetune_config import FINETUNE_OPTIONS, FinetuneConfig
    from icm.replicate import REPLICATE_OPTIONS

    for name in ("test_size", "context_tokens", "chat_model", "chat_base_url"):
        assert REPLICATE_OPTIONS[name] == EVAL_OPTIONS[name], name
    ours, theirs = REPLICATE_OPTIONS["train_size"], EVAL_OPTIONS["train_size"]
    assert (ours.flag, ours.type, ours.low) == (theirs.flag, theirs.type, theirs.low)
    assert (ours.default, theirs.default) == (32, None)
    # icm run --iterative's fine-tuning settings are icm finetune's, under its own flags.
    assert RunConfig().finetune_epochs == FinetuneConfig().epochs
    assert RunConfig().finetune_lr == FinetuneConfig().learning_rate
    assert RUN_OPTIONS["lora_r"] == FINETUNE_OPTIONS["lora_r"]
    assert RUN_OPTIONS["finetune_lr"].high == FINETUNE_OPTIONS["learning_rate"].high == 1.0
    with pytest.raises(TypeError, match="keeps its type"):
        from icm.option import option_like

        option_like(EVAL_OPTIONS["test_size"], type=int)


@pytest.mark.parametrize(
    ("config", "settings", "message"),
    [
        ("eval", {"bootstrap_shots": 0}, "--bootstrap-shots: must be >= 1, got 0"),
        ("eval", {"context_tokens": -5}, "--context-tokens: must be >= 1, got -5"),
        ("eval", {"test_size": 0}, "--test-size: must be >= 1, got 0"),
        ("eval", {"consistency": "exact"}, "--consistency: must be 'default', 'none' or"),
        ("replicate", {"testbeds": ["arithmetic"], "seeds": 0}, "--seeds: must be >= 1, got 0"),
        ("finetune", {"epochs": float("inf")}, "--epochs: must be finite and > 0, got inf"),
        ("finetune", {"learning_rate": 2.0}, "--lr: must be at most 1, got 2"),
    ],
)
def test_settings_given_through_the_api_are_checked_against_their_declaration(
    config: str, settings: dict[str, object], message: str, tmp_path: Path
) -> None:
    """Ranges are part of each option's declaration (they were tables of field names apart
    from it in config.py), so eval's, replicate's and finetune's settings given by a
    notebook are refused with the flag's name, as icm run's are."""
    from icm.errors import ConfigError
    from icm.evaluate import EvalConfig, run_eval
    from icm.finetune_config import FinetuneConfig
    from icm.replicate import ReplicateConfig, run_replicate

    make = {"eval": EvalConfig, "replicate": ReplicateConfig, "finetune": FinetuneConfig}
    cfg = make[config](**settings)
    with pytest.raises(ConfigError, match=re.escape(message)):
        if isinstance(cfg, EvalConfig):
            run_eval(cfg)
        elif isinstance(cfg, ReplicateConfig):
            cfg.out = tmp_path / "replicate"
            run_replicate(cfg)
        else:
            cfg.validate()
    assert not (tmp_path / "replicate").exists()
