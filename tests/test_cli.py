"""The `icm` command line: full runs into a temporary directory and clear one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest


def icm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_full_synthetic_run_writes_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = icm(
        "run",
        "--testbed",
        "arithmetic",
        "--model",
        "synthetic",
        "--size",
        "40",
        "--K",
        "300",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    for name in (
        "config.json",
        "labels.jsonl",
        "trace.jsonl",
        "metrics.json",
        "trace.png",
        "log.txt",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["K"] == 300 and config["config"]["testbed"] == "arithmetic"
    assert config["versions"]["icm"]
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 40
    assert {"id", "label", "score", "group", "batch", "gold", "prompt"} <= set(labels[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["n_labeled"] == 40
    assert metrics["inconsistencies"] == 0
    # The stand-in scorer knows the truth noisily (zero-shot ~93%): the search must do well.
    assert metrics["agreement_with_gold"] >= 0.9
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert len(trace) == 301 and trace[0]["outcome"] == "init"
    # The run says in words that no language model was used.
    assert "SYNTHETIC" in (out / "log.txt").read_text()


def test_git_hash_names_the_commit_and_a_dirty_tree(tmp_path: Path) -> None:
    from icm.run_dir import git_hash

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert git_hash(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    assert git_hash(tmp_path) == head
    assert git_hash(tmp_path, short=True) == git("rev-parse", "--short", "HEAD")
    (tmp_path / "b.txt").write_text("untracked files do not make it dirty\n")
    assert git_hash(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert git_hash(tmp_path) == head + "-dirty"


def test_help_lists_the_original_flags() -> None:
    r = icm("run", "--help")
    assert r.returncode == 0
    for flag in (
        "--testbed",
        "--alpha",
        "--seed",
        "--model",
        "--batch_size",
        "--num_seed",
        "--K",
        "--consistency_fix_K",
        "--decay",
        "--initial_T",
        "--final_T",
        "--scheduler",
        "--out",
        "--base-url",
    ):
        assert flag in r.stdout, flag


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--testbed", "arithmetik"], "unknown testbed 'arithmetik'. Did you mean 'arithmetic'?"),
        (["--K", "-1"], "--K: must be >= 0, got -1"),
        (["--alpha", "-2"], "--alpha: must be finite and >= 0, got -2"),
        (["--initial_T", "0.001"], "--initial_T: must be >= final_T"),
        (["--consistency_fix_K", "-3"], "--consistency_fix_K: must be >= 0, got -3"),
        (["--decay", "1.5"], "--decay: must be in (0, 1]"),
        (
            ["--scheduler", "cosine"],
            "--scheduler: invalid choice: 'cosine' (choose from 'log', 'exp')",
        ),
        (["--batch_size", "0"], "--batch_size: must be >= 1"),
        (["--checkpoint-every", "-1"], "--checkpoint-every: must be finite and >= 0, got -1"),
        (["--K", "ten"], "argument --K: invalid int value: 'ten'"),
    ],
)
def test_bad_input_gives_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    r = icm("run", "--model", "synthetic", "--out", str(tmp_path / "r"), "--quiet", *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("icm: error:")


def test_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = icm("run", "--model", "synthetic", "--out", str(blocker / "run"), "--quiet")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"--out: cannot write to '{blocker / 'run'}'" in r.stderr


def test_testbeds_show_and_plot(tmp_path: Path) -> None:
    r = icm("testbeds")
    assert r.returncode == 0 and "arithmetic" in r.stdout
    r = icm("show", "arithmetic", "-n", "2", "--gold")
    assert r.returncode == 0
    assert "I think this claim is" in r.stdout and "[gold: True]" in r.stdout
    out = tmp_path / "run"
    assert (
        icm(
            "run", "--model", "synthetic", "--size", "8", "--K", "20", "--out", str(out), "--quiet"
        ).returncode
        == 0
    )
    (out / "trace.png").unlink()
    r = icm("plot", str(out))
    assert r.returncode == 0 and (out / "trace.png").stat().st_size > 1000
    r = icm("plot", str(tmp_path))
    assert r.returncode == 2 and "no trace.jsonl" in r.stderr
    # A name matplotlib cannot write was its error ("Format 'jsonl' is not supported").
    r = icm("plot", str(out), "--out", str(tmp_path / "trace.jsonl"))
    assert r.returncode == 2 and "--out: " in r.stderr and "end it in .png" in r.stderr
    assert not (tmp_path / "trace.jsonl").exists()
    r = icm("plot", str(out), "--out", str(tmp_path / "trace.svg"))
    assert r.returncode == 0 and (tmp_path / "trace.svg").read_text().startswith("<?xml")


def test_show_prints_every_relation_of_each_shown_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Relations where the claim is the second end, and group constraints, are shown too."""
    from icm import cli

    rows = [
        {"id": "q-a", "claim": "A.", "group": "q"},
        {"id": "q-b", "claim": "B.", "group": "q"},
        {"id": "q-c", "claim": "C.", "group": "q"},
        {"relation": "exactly_one_true", "group": "q"},
        {"id": "r-a", "claim": "D.", "group": "r"},
        {"id": "r-b", "claim": "E.", "group": "r", "same": "r-a"},
        {"id": "r-c", "claim": "F.", "group": "r", "opposite": "r-a"},
        {"relation": "at_least_one_true", "group": "r"},
    ]
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["show", str(path), "-n", "6"]) == 0
    blocks = {b.split(" ", 1)[0]: b for b in capsys.readouterr().out.split("--- ")[1:] if b.strip()}
    assert "relation: exactly one of this claim and q-a, q-c is true" in blocks["q-b"]
    assert "not both true" not in blocks["q-b"]  # said by "exactly one"
    assert "relation: same label as r-b" in blocks["r-a"]
    assert "relation: opposite of r-a (exactly one of the two is true)" in blocks["r-c"]
    assert "relation: at least one of this claim and r-a, r-b is true" in blocks["r-c"]


def test_scheduler_help_gives_the_log_betas_the_core_uses() -> None:
    """The help of --scheduler names the log schedule's beta of each --algorithm, as the
    core sets it (it once said only "log | exp")."""
    from icm import _icm_core as core
    from icm.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (action,) = [a for a in commands.choices["run"]._actions if "--scheduler" in a.option_strings]
    assert action.help is not None
    paper, code = core.search_params_paper().log_beta, core.search_params_code().log_beta
    assert f"beta {paper:g} under --algorithm paper" in action.help
    assert f"{code:g} under --algorithm code" in action.help


def test_config_docstring_states_the_sparse_context_the_cli_uses() -> None:
    import re

    from icm import config
    from icm.cli import build_parser

    assert config.__doc__ is not None
    stated = re.search(r'`mp="(\w+)"` with `context_k=(\d+)`', config.__doc__)
    assert stated is not None
    run = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    defaults = {a.dest: a.default for a in run.choices["run"]._actions}
    assert (defaults["mp"], defaults["context_k"]) == (stated[1], int(stated[2]))


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser of `icm`, with its command line."""
    from icm.cli import build_parser

    out, todo = [], [("icm", build_parser())]
    while todo:
        name, parser = todo.pop()
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return out


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def test_every_option_has_help_and_both_spellings() -> None:
    parsers = all_parsers()
    assert len(parsers) > 12
    for name, parser in parsers:
        for action in options(parser):
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            bodies = [o[2:] for o in action.option_strings if o.startswith("--")]
            if any("-" in b or "_" in b for b in bodies):
                assert any("-" in b for b in bodies) and any("_" in b for b in bodies), (
                    f"{name} {action.option_strings}: a multi-word option takes both the "
                    "dash and the underscore spelling"
                )


def test_no_parser_takes_an_abbreviation() -> None:
    for name, parser in all_parsers():
        assert not parser.allow_abbrev, name


@pytest.mark.parametrize(
    ("args", "unknown"),
    [
        (["--k", "5"], "--k (did you mean --K?)"),  # once silently --keep-trailing-space
        (["--bat", "4"], "--bat (did you mean --batch_size?)"),
        (["--quie"], "--quie (did you mean --quiet?)"),
    ],
)
def test_an_abbreviated_flag_is_an_error(args: list[str], unknown: str, tmp_path: Path) -> None:
    r = icm("run", "--model", "synthetic", "--out", str(tmp_path / "r"), "--quiet", *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[-1] == f"icm: error: icm run: unknown option {unknown}"
    assert not (tmp_path / "r").exists()


def test_underscore_and_dash_spellings_mean_the_same() -> None:
    from icm.cli import build_parser

    parser = build_parser()
    base = ["run", "--model", "synthetic"]
    dashed = parser.parse_args(
        [*base, "--keep-trailing-space", "--context-k", "3", "--data-dir", "d"]
    )
    underscored = parser.parse_args(
        [*base, "--keep_trailing_space", "--context_k", "3", "--data_dir", "d"]
    )
    assert dashed.keep_trailing_space is True and dashed.context_k == 3
    assert vars(dashed) == vars(underscored)


def test_replicate_takes_every_search_flag_of_run_and_passes_it_on() -> None:
    """One declaration of the search flags: replicate once re-declared eight of them and
    lacked --decay, --initial_T, --scheduler and others, which it then could not pass on."""
    from icm.cli.options import search_fields, search_options
    from icm.config import RunConfig

    parsers = dict(all_parsers())
    run, replicate = parsers["icm run"], parsers["icm replicate"]
    assert len(search_fields()) == 21 and "scheduler" in search_fields()
    assert {"init", "zero_shot", "prefetch_call_limit", "prefetch_fill"} <= set(search_fields())
    for field in search_fields():
        r = next(a for a in options(run) if a.dest == field)
        p = next(a for a in options(replicate) if a.dest == field)
        assert (p.option_strings, p.default, p.type) == (r.option_strings, r.default, r.type)
    args = replicate.parse_args(
        ["--testbeds", "arithmetic", "--decay", "0.5", "--initial_T", "3", "--scheduler", "exp"]
    )
    cfg = RunConfig(**search_options(args))
    assert (cfg.decay, cfg.initial_T, cfg.scheduler) == (0.5, 3.0, "exp")


def test_only_commands_that_take_the_synthetic_stand_in_offer_it() -> None:
    """`icm eval --help` offered --model synthetic, which eval refuses (so does replicate)."""
    parsers = dict(all_parsers())

    def model_help(command: str) -> str:
        return next(a.help for a in options(parsers[command]) if a.dest == "model") or ""

    assert "synthetic" in model_help("icm run")
    assert "synthetic" not in model_help("icm eval")
    assert "synthetic" not in model_help("icm replicate")


def test_no_prefix_of_a_boolean_flag_has_an_underscore_alias_that_means_yes() -> None:
    """--no-zero-shot's alias --no_zero_shot would have read its value off the '--no-'
    prefix it lacks, and meant --zero-shot."""
    from icm.cli import build_parser

    args = build_parser().parse_args(["run", "--no-zero-shot", "--no-keep-trailing-space"])
    assert args.zero_shot is False and args.keep_trailing_space is False
    for _, parser in all_parsers():
        for a in options(parser):
            assert not any(o.startswith("--no_") for o in a.option_strings), a.option_strings


def test_a_prefetch_call_limit_without_a_prefetch_depth_is_refused() -> None:
    """The limit only shapes speculative calls: alone it would do nothing, silently."""
    from icm.config import RunConfig
    from icm.errors import ConfigError

    with pytest.raises(ConfigError, match="--prefetch-depth"):
        RunConfig(prefetch_call_limit=1).validate()
    RunConfig(prefetch_call_limit=1, prefetch_depth=4).validate()
    assert (
        RunConfig(prefetch_call_limit=1, prefetch_depth=4).search_params().prefetch_call_limit == 1
    )


def test_prefetch_fill_needs_a_call_limit_and_fills_waves_of_the_concurrency() -> None:
    """--prefetch-fill sends what --prefetch-call-limit keeps back: without a limit there
    is nothing to fill with, which is refused rather than ignored."""
    from icm.config import RunConfig
    from icm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--prefetch-fill.*--prefetch-call-limit"):
        RunConfig(prefetch_fill=True, prefetch_depth=4).validate()
    cfg = RunConfig(prefetch_fill=True, prefetch_depth=4, prefetch_call_limit=1, concurrency=48)
    cfg.validate()
    assert cfg.search_params().prefetch_fill == 48
    assert RunConfig(prefetch_depth=4, prefetch_call_limit=1).search_params().prefetch_fill == 0


def test_prefetch_fill_through_icm_run_keeps_the_run_and_sends_more_ahead(tmp_path: Path) -> None:
    """`icm run --mp exact` with --prefetch-fill: the same labels and trace as with the call
    limit alone, and more speculative requests sent (the fill), counted in metrics.json."""
    common = ["run", "--testbed", "arithmetic", "--model", "synthetic", "--size", "24"]
    common += ["--K", "80", "--mp", "exact", "--concurrency", "8", "--quiet"]
    runs = {}
    for name, extra in (
        ("plain", []),
        ("limit", ["--prefetch-depth", "4", "--prefetch-call-limit", "1"]),
        ("fill", ["--prefetch-depth", "4", "--prefetch-call-limit", "1", "--prefetch-fill"]),
    ):
        r = icm(*common, *extra, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        runs[name] = tmp_path / name
    for name in ("trace.jsonl", "labels.jsonl"):
        want = (runs["plain"] / name).read_text()
        assert (runs["limit"] / name).read_text() == want, name
        assert (runs["fill"] / name).read_text() == want, name
    sent = {
        name: json.loads((d / "metrics.json").read_text())["prefetched_requests"]
        for name, d in runs.items()
    }
    assert sent["plain"] == 0 < sent["limit"] < sent["fill"], sent
    config = json.loads((runs["fill"] / "config.json").read_text())["config"]
    assert config["prefetch_fill"] is True
