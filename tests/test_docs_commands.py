"""Docs as tests: the commands README.md and docs/*.md show must work as shown.

Three checks, so that a doc cannot drift from the tool without a test failing:

1. Every `icm ...` command the docs show, in a code block or in inline code, parses with
   icm's own parser once its placeholders are filled in (RUN_DIR, NAME, N, ...); each
   alternative of a synopsis (`--format sft|dpo`) is parsed, `[optional]` parts are
   included. docs/reliability.md is left out: its rows show bad inputs on purpose, and
   each row names the test that checks its error.
2. Every command in a code block is either run here, at the size shown or smaller
   (`RUNS`: the model and fine-tuning ones carry their tier's marker), or listed in
   `NOT_RUN` with the reason it cannot run on this machine. A new doc command that is in
   neither fails `test_every_code_block_command_is_run_or_says_why_not`.
3. Every `python benchmarks/X.py --flag` shown names a script that exists and flags its
   --help lists.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from icm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHOWS_BAD_INPUTS = {"reliability.md"}
SHARED_DATA = ROOT.parent / "shared" / "data"

# Placeholders the docs use, and a value of the right type for each (parsing only).
PLACEHOLDERS = {
    "RUN_DIR": "run",
    "RUN": "run",
    "DIR": "dir",
    "FOLDER": "dir",
    "DATA": "data",
    "NAME": "capitals",
    "TESTBED": "capitals",
    "N": "8",
    "S": "train",
    "F": "0.3",
    "K": "5",
    "FILE": "file",
    "FILE.gguf": "model.gguf",
    "PATH": "path",
    "SOURCE": "golden",
    "MODEL": "model",
    "URL": "http://127.0.0.1:9/v1",
    "X": "x",
}


UV_RUN = r"^(uv run (--extra \S+ |--\S+ )*)"  # the prefix of a command run in the checkout


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    text: str  # as shown, continuation lines joined
    in_block: bool


def _commands_of(path: Path) -> list[DocCommand]:
    """The commands of one doc: in code blocks (continuation lines joined, `&&` split,
    comments dropped) and in inline code outside them."""
    found: list[DocCommand] = []
    lines = path.read_text().splitlines()
    in_block = False
    i = 0
    while i < len(lines):
        n, line = i + 1, lines[i].strip()
        i += 1
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            while line.endswith("\\") and i < len(lines):
                line = line[:-1].rstrip() + " " + lines[i].strip()
                i += 1
            for part in line.split(" && "):
                part = part.split("  #")[0].strip()
                if re.match(UV_RUN + r"?(icm|python|pytest)(\s|$)", part):
                    found.append(DocCommand(f"{path.name}:{n}", part, True))
        else:
            for m in re.finditer(
                r"`(" + UV_RUN[1:] + r"?(?:icm [a-z]|python benchmarks/)[^`]*)`", line
            ):
                found.append(DocCommand(f"{path.name}:{n}", m.group(1), False))
    return found


@functools.cache
def doc_commands() -> tuple[DocCommand, ...]:
    """Read once per session: many tests below ask."""
    return tuple(c for p in DOCS for c in _commands_of(p))


def icm_argv_variants(text: str) -> list[list[str]]:
    """The argv (after `icm`) of each alternative the command text stands for."""
    text = text.replace("\\|", "|").split(" | ")[0]  # a shell pipe ends the command
    text = re.sub(UV_RUN, "", text).replace("[", " ").replace("]", " ")
    words = shlex.split(text)
    assert words and words[0] == "icm", text
    choices: list[list[str]] = []
    for word in words[1:]:
        if word in ("...", "…"):  # "and more": nothing, or the value of the flag before
            choices.append([ELLIPSIS])
            continue
        word = word.removesuffix("...")
        options = word.split("|") if "|" in word and not word.startswith("http") else [word]
        choices.append([PLACEHOLDERS.get(o, o) for o in options])
    return [list(v) for v in itertools.product(*choices)]


ELLIPSIS = "\0..."


def parse_error(argv: list[str]) -> str | None:
    """None if icm's parser takes argv, else the error it printed. A "..." stands for
    nothing or, after a flag that needs one, a value."""
    if ELLIPSIS in argv:
        without = parse_error([w for w in argv if w != ELLIPSIS])
        if without is None:
            return None
        return parse_error(["x" if w == ELLIPSIS else w for w in argv]) and without
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):  # --help exits 0
            return err.getvalue().strip().splitlines()[-1]
    return None


ICM_COMMANDS = [
    c
    for c in doc_commands()
    if re.match(UV_RUN + r"?icm(\s|$)", c.text) and c.where.split(":")[0] not in SHOWS_BAD_INPUTS
]


def mention_error(argv: list[str]) -> str | None:
    """Inline code may name a command or a flag without its required parts (`icm eval`,
    `icm eval --finetuned`); what it shows must still exist and be valid."""
    error = parse_error(argv)
    if error and "expected one argument" in error and argv[-1].startswith("-"):
        error = parse_error([*argv, "8"]) and parse_error([*argv, "x"])
    if error and "the following arguments are required" in error:
        return None
    return error


@pytest.mark.parametrize("command", ICM_COMMANDS, ids=lambda c: c.where)
def test_every_icm_command_in_the_docs_parses(command: DocCommand) -> None:
    for argv in icm_argv_variants(command.text):
        error = parse_error(argv) if command.in_block else mention_error(argv)
        assert error is None, f"{command.where}: `{command.text}`: icm {' '.join(argv)}: {error}"


def test_no_doc_command_reads_this_checkouts_shared_data() -> None:
    """../shared/data exists only on this project's machines: the docs show what a user
    runs (`icm data fetch`, `--data-dir DIR`)."""
    assert [c.where for c in doc_commands() if "shared/data" in c.text] == []


# Paths of the original code (Wen et al.'s repository) that the docs name.
ORIGINAL_CODE_PATHS = {"src/experiments/ICM.py", "src/pipeline", "core/llm_api"}


def test_every_path_the_docs_name_exists() -> None:
    """A doc that names `src/...`, `core/...`, `tests/...`, `benchmarks/...` or a results
    link must point at something in this checkout (files move; the docs must follow)."""
    missing = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            named = re.findall(
                r"`((?:src|core|tests|benchmarks|docs|examples|bindings|\.ci)/[^`\s:]*)`", line
            )
            for path in (p.rstrip(".,)") for p in named):
                if any(c in path for c in "*<>{}") or path in ORIGINAL_CODE_PATHS:
                    continue
                if not (ROOT / path).exists():
                    missing.append(f"{doc.name}:{n}: {path}")
            for link in re.findall(r"\]\(((?:results/|\.\./)[^)#\s]*)\)", line):
                if not (doc.parent / link).exists():
                    missing.append(f"{doc.name}:{n}: link {link}")
    assert missing == []


def test_the_docs_show_commands_to_check() -> None:
    """The extraction itself: the README's two commands and a synopsis are found."""
    texts = {c.text for c in doc_commands()}
    assert "uv run icm run" in texts
    assert "uv run --extra finetune pytest" in texts
    assert any(t.startswith("icm export RUN_DIR --format sft|dpo|reward|hf") for t in texts)
    assert len(ICM_COMMANDS) > 100


# --------------------------------------------------------------------------- run them

# Code-block commands that are not run here, and why.
NOT_RUN = {
    "uv run --extra finetune pytest": "the test suite itself (README); .ci/run runs it",
    "uv run pytest -m fast -n 2": "a tier of this test suite itself (README)",
    "uv sync --extra finetune": "setup, not a command of icm",
    "vllm serve": "starts a vLLM server on GPUs (docs/replicate.md)",
    "icm replicate --testbeds truthfulqa,gsm8k,alpaca --seeds 3": (
        "needs two vLLM servers of a 70B model; parsed above, and "
        "tests/test_replicate.py runs replicate on the embedded model"
    ),
    "icm run --testbed gsm8k --data-dir DATA --size all": "needs a vLLM server (docs/finetune.md)",
    "icm finetune runs/gsm8k-icm": "needs /models/Llama-3.1-8B and a GPU (docs/finetune.md)",
    "icm eval --testbed gsm8k --data-dir DATA": "needs the fine-tuned 8B models above",
    "icm data fetch": "downloads from the internet (tests/test_data_fetch.py uses a local mirror)",
}

# Code-block commands run here (by the tests below), by the start of their text.
RUNS = {
    "uv run icm run": "test_readme_default_run",
    "icm testbeds": "test_testbeds_synopsis",
    "icm show TESTBED": "test_testbeds_synopsis",
    "icm run --testbed NAME|claims.jsonl|claims.csv": "test_testbeds_synopsis",
    "icm data list": "test_testbeds_synopsis",
    "uv run icm run --testbed capitals --size 8 --batch_size 4 --K 10 --iterative": (
        "test_finetune_walkthrough"
    ),
    "uv run icm finetune runs/iter": "test_finetune_walkthrough",
    "uv run icm eval --testbed capitals --labels zero-shot --test-size 40": (
        "test_finetune_walkthrough"
    ),
}


def test_every_code_block_command_is_run_or_says_why_not() -> None:
    unclaimed = [
        f"{c.where}: {c.text}"
        for c in doc_commands()
        if c.in_block and not any(c.text.startswith(k) for k in (*NOT_RUN, *RUNS))
    ]
    assert unclaimed == [], "add these doc commands to RUNS (and run them) or NOT_RUN"


def icm(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "icm.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"icm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No user caches: the response cache and Hugging Face's live under tmp_path."""
    env = dict(os.environ)
    env["ICM_CACHE_DIR"] = str(tmp_path / "icm-cache")
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("ICM_DATA_DIR", None)
    return env


def block_command(start: str) -> list[str]:
    """The argv (after `icm`) of the one code-block command that starts with `start`."""
    blocks = [c for c in doc_commands() if c.in_block]
    (command,) = [c for c in blocks if c.text == start] or [
        c for c in blocks if c.text.startswith(start)
    ]
    (argv,) = icm_argv_variants(command.text)
    return argv


def test_testbeds_synopsis(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """docs/testbeds.md's synopsis, with its placeholders filled in (synthetic scorer)."""
    assert "capitals" in icm(["testbeds"], tmp_path, clean_env)
    shown = icm(["show", "capitals", "-n", "4", "--split", "train", "--gold"], tmp_path, clean_env)
    assert "I think this claim is" in shown
    out = icm(
        [
            "run",
            "--testbed",
            "capitals",
            "--split",
            "train",
            "--size",
            "8",
            "--consistency",
            "default",
            "--model",
            "synthetic",
            "--K",
            "20",
            "--out",
            "r",
        ],
        tmp_path,
        clean_env,
    )
    assert "completed:" in out
    if SHARED_DATA.is_dir():
        assert "gsm8k" in icm(["data", "list", "--data-dir", str(SHARED_DATA)], tmp_path, clean_env)


@pytest.mark.model
def test_readme_default_run(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """README command 1 as written (after setup), with fresh caches: it completes, writes
    the files the README lists, and sends about the requests the README quotes."""
    assert block_command("uv run icm run") == ["run"]
    out = icm(["run"], tmp_path, clean_env)
    assert "completed" in out and "zero-shot" in out
    (run,) = (tmp_path / "runs").iterdir()
    readme = (ROOT / "README.md").read_text()
    for name in re.findall(r"`(\w+\.(?:json|jsonl|png|txt))`", readme.split("## ")[1]):
        assert (run / name).is_file(), f"README lists {name}"
    quoted = re.search(r"(\d+) model requests,\s+(\d+) of them the zero-shot reference", readme)
    assert quoted, "README: 'N model requests, M of them the zero-shot reference'"
    search = json.loads((run / "metrics.json").read_text())["search_requests"]
    zero_shot = json.loads((run / "zero_shot.json").read_text())["requests"]
    assert zero_shot == int(quoted[2])  # one per claim
    # The search's requests follow the model's scores, which may differ in the last bits
    # from one CPU to another: the README's number must be within 10% of this run's.
    assert abs(search + zero_shot - int(quoted[1])) <= 0.1 * int(quoted[1]), (
        f"README quotes {quoted[1]} requests; this run sent {search + zero_shot}"
    )


@pytest.mark.finetune
def test_finetune_walkthrough(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """docs/finetune.md's CPU walkthrough, in order, with 1 epoch and 8 test claims
    instead of 3 and 40 (smaller, same commands)."""
    run = block_command("uv run icm run --testbed capitals --size 8")
    icm([*run, "--finetune-epochs", "1"], tmp_path, clean_env)
    assert (tmp_path / "runs" / "iter" / "iterative.json").is_file()  # the `cat` line
    for source in ("gold", "icm"):
        ft = block_command(f"uv run icm finetune runs/iter --labels {source}")
        icm([*ft, "--epochs", "1"], tmp_path, clean_env)
    ev = block_command("uv run icm eval --testbed capitals --labels zero-shot")
    out = icm([*ev, "--test-size", "8"], tmp_path, clean_env)
    assert "ft/gold" in out and "ft/icm" in out


# --------------------------------------------------------------------------- benchmarks

BENCHMARK_COMMANDS = [c for c in doc_commands() if "benchmarks/" in c.text]


@pytest.mark.parametrize("command", BENCHMARK_COMMANDS, ids=lambda c: c.where)
def test_benchmark_commands_name_real_scripts_and_flags(command: DocCommand) -> None:
    words = shlex.split(command.text)
    (script,) = [w for w in words if w.startswith("benchmarks/")]
    assert (ROOT / script).is_file(), f"{command.where}: {script} does not exist"
    shown = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    for flag in (w for w in words if w.startswith("--")):
        assert flag in shown.stdout, f"{command.where}: {script} has no {flag}"
