"""Issue 17: bad input gets one clear line, never a traceback or a silent wrong result, and
no run loses what it computed (run directories, checkpoints, labels.jsonl).

Runs use the synthetic stand-in scorer (no model needed): these are checks of icm's own
handling of files, flags and checkpoints, which do not depend on the scorer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from icm import _icm_core as core
from icm.cli import main
from icm.errors import DataError
from icm.run_dir import default_run_dir
from icm.search import run_icm
from icm.testbeds import LoadOptions
from icm.testbeds.custom import load_claims_file
from icm.testbeds.loading import load_table

QUICK = ["run", "--model", "synthetic", "--size", "8", "--K", "20", "--quiet"]


def icm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def icm_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """`icm ARGS` through the CLI's entry point in this process (an exception that escapes
    main() fails the test, as a traceback would): for the many cases that need no process
    of their own, an interpreter start each costs more than the check."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(
        list(args), code, captured.out, without_server_reports(captured.err)
    )


# socketserver's report of a failed request (a test's fake server whose client hung up),
# printed to sys.stderr from that server's thread: in process it can land in the stderr
# captured for a later test of the same worker (its first lines sometimes in the capture
# before, two reports interleaved), and is never icm's.
SERVER_REPORT = re.compile(
    r"(?:-{40}\n)?(?:Exception occurred during processing of request from [^\n]*\n)?"
    r"Traceback \(most recent call last\):\n(?:(?!-{40}\n).)*?socketserver\.py"
    r"(?:(?!-{40}\n).)*-{40}\n",
    re.S,
)


def without_server_reports(stderr: str) -> str:
    return SERVER_REPORT.sub("", stderr)


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one `icm: error:` line and no traceback."""
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("icm: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def unwritable_dir() -> Path:
    """A directory even root cannot create files in (sysfs)."""
    probe = Path("/sys/icm-write-probe")
    try:
        probe.mkdir()
    except OSError:
        return Path("/sys")
    probe.rmdir()
    pytest.skip("/sys is writable here")


# --------------------------------------------------------------------- 1. run directories


def test_default_run_dirs_in_one_second_are_distinct(tmp_path: Path) -> None:
    dirs = [default_run_dir("capitals", tmp_path / "runs") for _ in range(5)]
    assert len(set(dirs)) == 5
    assert all(d.is_dir() and not any(d.iterdir()) for d in dirs)


def test_parallel_runs_without_out_each_get_their_own_directory(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "icm.cli", *QUICK, "--seed", str(seed)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2, 3, 4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    dirs = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(dirs) == 4
    seeds = set()
    for d in dirs:
        seeds.add(json.loads((tmp_path / d / "config.json").read_text())["config"]["seed"])
        assert len((tmp_path / d / "labels.jsonl").read_text().splitlines()) == 8
    assert seeds == {1, 2, 3, 4}  # each run wrote its own directory, none overwrote another


def _start_long_run(out: Path) -> subprocess.Popen[str]:
    args = ["--size", "60", "--K", "200000", "--mp", "exact", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "icm.cli", "run", "--model", "synthetic", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (nohup, CI) hands its children SIGINT ignored,
        # and Python then installs no Ctrl-C handler: give the run the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    return proc


def test_a_run_directory_in_use_is_refused_and_freed_by_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start_long_run(out)
    try:
        for args in ([*QUICK, "--out", str(out)], ["run", "--resume", str(out), "--quiet"]):
            line = one_error_line(icm(*args))
            assert str(out) in line and "another icm run is using" in line
            assert f"pid {proc.pid}" in line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The lock went with the killed process: the run continues (it is long: stop it soon).
    resumed = subprocess.Popen(
        [sys.executable, "-m", "icm.cli", "run", "--resume", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as above
    )
    log = out / "log.txt"
    deadline = time.monotonic() + 120
    while "resuming" not in log.read_text():
        assert resumed.poll() is None and time.monotonic() < deadline, resumed.stderr
        time.sleep(0.1)
    resumed.send_signal(signal.SIGINT)
    _, err = resumed.communicate(timeout=60)
    assert "another icm run" not in err


# ------------------------------------------------- 2. a completed run's outputs are checked


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "done"
    r = icm(
        "run",
        "--model",
        "synthetic",
        "--size",
        "30",
        "--K",
        "60",
        "--batch_size",
        "10",
        "--quiet",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture()
def finished(finished_template: Path, tmp_path: Path) -> Path:
    """A completed run of this test's own (a copy: tests damage it)."""
    out = tmp_path / "done"
    shutil.copytree(finished_template, out)
    return out


@pytest.mark.parametrize("damage", ["truncated", "deleted", "edited"])
def test_resume_of_a_completed_run_rebuilds_damaged_labels(finished: Path, damage: str) -> None:
    labels = finished / "labels.jsonl"
    good = labels.read_text()
    if damage == "truncated":
        labels.write_text("".join(good.splitlines(keepends=True)[:7]))
    elif damage == "deleted":
        labels.unlink()
    else:
        rows = [json.loads(x) for x in good.splitlines()]
        rows[3]["label"] = not rows[3]["label"]
        labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = icm("run", "--resume", str(finished), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "rebuilt labels.jsonl" in r.stderr
    assert labels.read_text() == good
    r = icm("run", "--resume", str(finished), "--quiet")
    assert r.returncode == 0 and "nothing to do" in r.stderr


def test_resume_of_a_completed_run_redraws_a_deleted_plot(finished: Path) -> None:
    (finished / "trace.png").unlink()
    r = icm("run", "--resume", str(finished), "--quiet")
    assert r.returncode == 0 and "rebuilt trace.png" in r.stderr, r.stderr
    assert (finished / "trace.png").read_bytes().startswith(b"\x89PNG")


def test_export_refuses_a_partial_labels_file(finished: Path, tmp_path: Path) -> None:
    labels = finished / "labels.jsonl"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:12]))
    out = tmp_path / "sft.jsonl"
    line = one_error_line(icm("export", str(finished), "--format", "sft", "--out", str(out)))
    assert str(labels) in line and "the run has 30" in line
    assert not out.exists()


# ----------------------------------------------------- 3. relations across batches


def _chain_file(tmp_path: Path, n: int) -> Path:
    """n ungrouped claims, each 'opposite' to the next: one chain of relations."""
    rows = [{"id": f"c{i}", "claim": f"claim {i}", "label": i % 2 == 0} for i in range(n)]
    rows += [{"relation": "opposite", "a": f"c{i}", "b": f"c{i + 1}"} for i in range(0, n, 2)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_related_claims_are_batched_together(tmp_path: Path) -> None:
    claims = _chain_file(tmp_path, 40)  # 20 related pairs, batches of 5 claims
    out = tmp_path / "run"
    r = icm(
        "run",
        "--model",
        "synthetic",
        "--testbed",
        str(claims),
        "--size",
        "all",
        "--batch_size",
        "5",
        "--K",
        "30",
        "--quiet",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    batch = {
        row["id"]: row["batch"]
        for row in map(json.loads, (out / "labels.jsonl").read_text().splitlines())
    }
    assert all(batch[f"c{i}"] == batch[f"c{i + 1}"] for i in range(0, 40, 2))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["relations_dropped_across_batches"] == 0


def test_relations_that_cannot_share_a_batch_are_counted_and_said(tmp_path: Path) -> None:
    rows = [{"id": f"c{i}", "claim": f"claim {i}", "label": True} for i in range(12)]
    rows += [{"relation": "same", "a": f"c{i}", "b": f"c{i + 1}"} for i in range(11)]
    claims = tmp_path / "chain.jsonl"
    claims.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    r = icm(
        "run",
        "--model",
        "synthetic",
        "--testbed",
        str(claims),
        "--size",
        "all",
        "--batch_size",
        "4",
        "--K",
        "10",
        "--quiet",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    batch = {
        row["id"]: row["batch"]
        for row in map(json.loads, (out / "labels.jsonl").read_text().splitlines())
    }
    across = sum(batch[f"c{i}"] != batch[f"c{i + 1}"] for i in range(11))
    assert across >= 2  # 12 claims in batches of about 4
    assert metrics["relations_dropped_across_batches"] == across
    assert (
        f"warning: {across} of 11 relations join claims of different batches"
        in (out / "log.txt").read_text()
    )


# ------------------------------------------------------------ 4. duplicate names in data


@pytest.mark.parametrize(
    ("name", "text", "line", "field"),
    [
        ("c.jsonl", '{"id": "a", "claim": "x"}\n{"id": "b", "claim": "y", "id": "c"}\n', 2, "id"),
        (
            "c.json",
            '[\n{"id": "a", "claim": "x"},\n{"claim": "y", "label": true, "label": false}]',
            3,
            "label",
        ),
        ("c.csv", "id,claim,label,claim\na,x,true,y\n", 1, "claim"),
    ],
)
def test_duplicate_keys_and_columns_are_refused(
    tmp_path: Path, name: str, text: str, line: int, field: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as e:
        load_claims_file(path)
    assert (e.value.path, e.value.line, e.value.field) == (str(path), line, field)
    assert "duplicate" in str(e.value)
    message = one_error_line(icm(*QUICK, "--testbed", str(path), "--out", str(tmp_path / "r")))
    assert f"{path}:{line}: field '{field}'" in message


# ------------------------------------------------------------ 5-7. flags and their ranges


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--size", "0"], "--size"),
        (["--size", "-4"], "--size"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "99999999999999999999999"], "--seed"),
        (["--K", "-5"], "--K"),
        (["--K", str(10**20)], "--K"),
        (["--num_seed", "-1"], "--num_seed"),
        (["--num_seed", str(2**40)], "--num_seed"),
        (["--consistency_fix_K", str(2**40)], "--consistency_fix_K"),
        (["--consistency_fix_K", "-2"], "--consistency_fix_K"),
        (["--batch_size", str(2**40)], "--batch_size"),
        (["--batch_size", "-3"], "--batch_size"),
        (["--context-k", str(2**40)], "--context-k"),
        (["--alpha", "1e308"], "--alpha"),
        (["--alpha", "nan"], "--alpha"),
        (["--alpha", "-1"], "--alpha"),
        (["--decay", "inf"], "--decay"),
        (["--initial_T", "1e300"], "--initial_T"),
        (["--final_T", "nan"], "--final_T"),
        (["--log-beta", "1e308"], "--log-beta"),
        (["--finetune-lr", "nan"], "--finetune-lr"),
        (["--finetune-lr", "1e9"], "--finetune-lr"),
        (["--timeout", "inf"], "--timeout"),
        (["--concurrency", str(10**6)], "--concurrency"),
    ],
)
def test_out_of_range_flags_get_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    out = tmp_path / "run"
    line = one_error_line(icm_in_process(capsys, *QUICK, *flags, "--out", str(out)))
    assert named in line
    assert not (out / "config.json").exists()


@pytest.mark.parametrize(
    "options",
    [{"seed": -1}, {"seed": 2**64}, {"K": 10**20}, {"alpha": float("inf")}, {"batch_size": 2**40}],
)
def test_out_of_range_options_of_the_api_are_config_errors(options: dict[str, object]) -> None:
    from icm.api import label
    from icm.errors import ConfigError

    table = load_table("capitals", "train", LoadOptions(size=8))
    with pytest.raises(ConfigError, match=f"--{next(iter(options))}: must be"):
        label(table, "synthetic", **options)


def test_size_zero_says_how_to_ask_for_the_whole_split(tmp_path: Path) -> None:
    line = one_error_line(icm(*QUICK, "--size", "0", "--out", str(tmp_path / "r")))
    assert "--size all" in line


def test_a_non_finite_score_stops_the_search_naming_the_claim() -> None:
    table = load_table("capitals", "train", LoadOptions(size=8))

    class NotFinite(core.Scorer):
        def score(self, requests: list[core.ScoreRequest]) -> list[core.LabelScore]:
            return [core.LabelScore(float("nan"), -1.0) for _ in requests]

        def reads_prompt_text(self) -> bool:
            return False

    params = core.search_params_paper()
    params.max_iterations = 5
    with pytest.raises(ValueError, match="non-finite score for claim '") as e:
        run_icm(table, NotFinite(), params, 8)
    assert any(f"'{cid}'" in str(e.value) for cid in table.ids)


# ------------------------------------------------------------------ 8. state.json on resume


@pytest.fixture(scope="module")
def interrupted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped in its first batch, with the figures that a resume starts from (made
    once; each case edits its own copy)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    r = icm(
        "run",
        "--model",
        "synthetic",
        "--size",
        "20",
        "--K",
        "40",
        "--batch_size",
        "10",
        "--quiet",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    (out / "metrics.json").unlink()  # as if killed before the end
    return out


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"n_trace_rows": -1}, "n_trace_rows"),
        ({"n_completed": -2}, "n_completed"),
        ({"n_completed": 0, "batch": 7}, "batch"),
        ({"n_completed": 0, "batch": 0, "state": {"iteration": 41}}, "state.iteration"),
        ({"n_completed": 0, "batch": 0, "state": {"iteration": 10**30}}, "state.iteration"),
        ({"n_completed": 0, "batch": 0, "state": {"iteration": -3}}, "state.iteration"),
        ({"n_completed": 0, "batch": 0, "state": {"n_accepted": 9}}, "state.n_accepted"),
        ({"n_completed": 0, "batch": 0, "state": {"labels": [1] * 3}}, "state.labels"),
        ({"n_completed": 0, "batch": 0, "state": {"labels": [2] * 10}}, "state.labels"),
        ({"n_completed": 0, "batch": 0, "state": {"context_pool": [50]}}, "state.context_pool"),
    ],
)
def test_impossible_checkpoints_are_refused(
    interrupted_template: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: dict,
    field: str,
) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted_template, out)
    state_path = out / "state.json"
    data = json.loads(state_path.read_text())
    good_state = {
        "labels": [1, 0] + [-1] * 8,
        "iteration": 4,
        "n_accepted": 2,
        "rng_state": "0",
        "initialized": True,
        "context_epoch": 0,
        "context_pool": [],
    }
    if isinstance(edit.get("state"), dict):
        edit = {**edit, "state": {**good_state, **edit["state"]}}
    data.update(edit)
    state_path.write_text(json.dumps(data))
    trace_before = (out / "trace.jsonl").read_bytes()
    line = one_error_line(icm_in_process(capsys, "run", "--resume", str(out), "--quiet"))
    assert str(state_path) in line and f"field '{field}'" in line
    assert (out / "trace.jsonl").read_bytes() == trace_before  # nothing cut back


# -------------------------------------------------- 9-10. files that cannot be written


def test_an_unwritable_out_is_one_line(tmp_path: Path) -> None:
    out = unwritable_dir() / "icm-run"
    line = one_error_line(icm(*QUICK, "--out", str(out)))
    assert f"--out: cannot write to '{out}'" in line


def test_an_unwritable_runs_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").symlink_to(unwritable_dir())
    line = one_error_line(icm(*QUICK, cwd=tmp_path))
    assert "cannot create a run directory in 'runs'" in line


def test_resume_in_a_read_only_run_directory_is_one_line() -> None:
    # root writes anywhere: the resume then runs as 'nobody', for whom the directory is
    # read-only (a folder outside pytest's private tmp, which nobody cannot enter)
    top = Path(tempfile.mkdtemp(prefix="icm-read-only-"))
    try:
        out = top / "run"
        r = icm("run", "--model", "synthetic", "--size", "8", "--K", "20", "--quiet",
                "--out", str(out))  # fmt: skip
        assert r.returncode == 0, r.stderr
        (out / "metrics.json").unlink()  # as if killed: there is work left
        for path in (top, *top.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = [sys.executable, "-m", "icm.cli", "run", "--resume", str(out), "--quiet"]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv to drop to another user")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:
            out.chmod(0o555)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        r = subprocess.run(command, capture_output=True, text=True, check=False, cwd=top)
        line = one_error_line(r)
        assert f"--resume: cannot write to '{out}'" in line
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    finally:
        (top / "run").chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("where", ["directory", "unwritable"])
def test_a_bad_cache_path_is_one_line(tmp_path: Path, where: str) -> None:
    cache = tmp_path if where == "directory" else unwritable_dir() / "icm" / "responses.sqlite"
    r = icm(
        "run",
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9",
        "--size",
        "8",
        "--K",
        "5",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
        "--cache",
        str(cache),
    )
    line = one_error_line(r)
    assert f"--cache: '{cache}' is a directory" in line or (
        f"--cache: cannot open the response cache '{cache}'" in line
    )
    # Found before the server is reached and before the run directory is made.
    assert not (tmp_path / "run").exists()


def test_an_os_error_in_a_command_names_the_path_and_type(finished: Path) -> None:
    out = unwritable_dir() / "sft.jsonl"
    r = icm("export", str(finished), "--format", "sft", "--out", str(out))
    line = one_error_line(r)
    assert r.returncode == 1
    assert str(out.parent) in line and ("PermissionError" in line or "OSError" in line)


def test_ctrl_c_still_interrupts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start_long_run(out)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "icm: interrupted" in err and "Traceback" not in err


def test_show_refuses_a_negative_count() -> None:
    line = one_error_line(icm("show", "capitals", "-n", "-3"))
    assert "argument -n: must be >= 1, got -3" in line


def test_a_closed_pipe_is_not_an_error() -> None:
    """`icm show ... | head`: the reader closing early ends icm quietly (no traceback,
    no error line), with the status of a process ended by SIGPIPE."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "icm.cli", "show", "capitals", "-n", "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before icm has imported itself, let alone printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


def test_a_data_error_is_one_line_whatever_the_file_holds(tmp_path: Path) -> None:
    """A value quoted from a file may hold a line break (found by test_fuzz on the MFV CSV)."""
    assert "\n" not in str(DataError("unknown 'C\nare'", path="v.csv", line=3, field="F\r\nG"))
    csv = tmp_path / "claims.csv"
    csv.write_text('id,claim,label\n"a\nb",x,maybe\n')
    with pytest.raises(DataError) as e:
        load_claims_file(csv, LoadOptions())
    assert "\n" not in str(e.value)


# ------------------------------------------------------------- 4. probes of a new user


@pytest.mark.parametrize("name", ["labels.jsonl", "state.json", "config.json", "batches.jsonl"])
def test_export_never_overwrites_a_file_of_the_run(
    capsys: pytest.CaptureFixture[str], finished: Path, name: str
) -> None:
    """`icm export RUN --out RUN/labels.jsonl` replaced the run's labels with SFT rows."""
    target = finished / name
    before = target.read_bytes()
    r = icm_in_process(capsys, "export", str(finished), "--format", "sft", "--out", str(target))
    assert f"is the {name} of the run directory" in one_error_line(r)
    assert target.read_bytes() == before


def test_export_never_overwrites_the_claims_file_or_takes_a_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    claims = tmp_path / "claims.jsonl"
    claims.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "claim": f"claim {i}", "label": i % 2 == 0}) + "\n"
            for i in range(6)
        )
    )
    before = claims.read_bytes()
    r = icm_in_process(capsys, *QUICK, "--testbed", "claims.jsonl", "--out", "run")
    assert r.returncode == 0, r.stderr
    for fmt in ("sft", "dpo"):
        r = icm_in_process(capsys, "export", "run", "--format", fmt, "--out", "claims.jsonl")
        assert "is the run's claims file" in one_error_line(r)
    assert claims.read_bytes() == before
    r = icm_in_process(capsys, "export", "run", "--format", "sft", "--out", str(tmp_path))
    assert f"--out: '{tmp_path}' is a directory" in one_error_line(r)


def test_synthetic_without_gold_is_refused_before_a_run_directory_is_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It was refused after the run directory was made, with the hint `icm run --resume`
    (which failed the same way), and the directory then blocked the same --out."""
    claims = tmp_path / "nogold.jsonl"
    claims.write_text('{"id": "a", "claim": "one", "label": true}\n{"id": "b", "claim": "two"}\n')
    out = tmp_path / "run"
    r = icm_in_process(capsys, *QUICK, "--testbed", str(claims), "--out", str(out))
    line = one_error_line(r)
    assert "needs gold labels for every claim; 1 of 2 have none (e.g. 'b')" in line
    assert "--resume" not in r.stderr and not out.exists()


def test_a_run_with_K_0_completes_with_its_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--K 0 (labels from the initial draw and the consistency fix only): the run was
    'completed' in metrics.json, but drawing trace.png (a log axis without a positive
    temperature) failed with matplotlib's 'Data cannot be log-scaled', exit 2."""
    out = tmp_path / "run"
    r = icm_in_process(capsys, "run", "--model", "synthetic", "--size", "8", "--K", "0",
                       "--quiet", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (out / "trace.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("claims", "relations", "kwargs", "message"),
    [
        ([{"id": "a", "prompt": "x", "gold": "false"}], [], {}, "claims[0].gold: expected True"),
        ([{"id": "a", "prompt": "x", "gold": 2}], [], {}, "claims[0].gold: expected True"),
        ([{"id": None, "prompt": "x"}], [], {}, "claims[0].id: expected a string or an integer"),
        ([{"id": "a", "prompt": None}], [], {}, "claims[0].prompt: expected a string"),
        ([{"id": "a", "prompt": "x", "group": 1.5}], [], {}, "claims[0].group: expected"),
        (["a"], [], {}, "claims[0]: expected a mapping, got str"),
        ({"id": "a", "prompt": "x"}, [], {}, "claims: expected a list of mappings, got a dict"),
        ([{"id": "a", "prompt": "x"}], [("same", "a")], {}, "relations[0]: expected (kind"),
        ([{"id": "a", "prompt": "x"}], [("same", "a", "a")], {}, "relates claim 'a' to itself"),
        ([{"id": "a", "prompt": "x"}], [], {"label_words": ("True", "True")}, "label_words:"),
        ([{"id": "a", "prompt": "x"}], [], {"label_words": ("True",)}, "label_words:"),
        (
            [{"id": "a", "question": "q", "claim": "c"}],
            [],
            {"template": "{foo}"},
            "template: '{foo}' cannot be filled",
        ),
    ],
)
def test_api_claims_table_refuses_what_it_would_misread(
    claims: object, relations: list[tuple[str, ...]], kwargs: dict[str, object], message: str
) -> None:
    """Before: gold "false" became True (bool("false")), an id or prompt None became the text
    "None", a claims dict was read as its keys, and a short relation tuple, a bad template or
    a non-mapping claim were a ValueError/KeyError/TypeError from deep inside."""
    from icm.api import claims_table
    from icm.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        claims_table(claims, relations, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_api_claims_table_keeps_group_0_and_label_needs_a_table() -> None:
    """Group 0 was read as no group (`0 or ""`); label() of a list was an AttributeError."""
    from icm.api import claims_table, label
    from icm.errors import ConfigError

    table = claims_table([{"id": "a", "prompt": "x", "group": 0, "gold": 1}])
    assert table.claims[0].group == "0" and table.claims[0].gold is True
    with pytest.raises(ConfigError, match="table: expected a ClaimTable"):
        label([{"id": "a", "prompt": "x"}], scorer="synthetic")  # type: ignore[arg-type]


def test_a_split_of_a_claims_file_is_refused_not_ignored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--split test` on a claims file (one split) labelled or showed the whole file."""
    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"id": "a", "claim": "one", "label": true}\n')
    out = tmp_path / "run"
    for args in (
        (*QUICK, "--testbed", str(claims), "--split", "test", "--out", str(out)),
        ("show", str(claims), "--split", "test"),
    ):
        line = one_error_line(icm_in_process(capsys, *args))
        assert "--split test: a claims file" in line and "--test-fraction" in line
    assert not out.exists()
    r = icm_in_process(capsys, "show", str(claims), "--split", "all")
    assert r.returncode == 0 and "--- a" in r.stdout


@pytest.mark.parametrize("action", ["stats", "clear"])
def test_icm_cache_with_cache_off_makes_no_file_named_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """`icm cache stats --cache off` created an SQLite file named 'off' here and reported it."""
    monkeypatch.chdir(tmp_path)
    line = one_error_line(icm_in_process(capsys, "cache", action, "--cache", "off"))
    assert f"--cache off: `icm cache {action}` needs a cache file" in line
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))
    r = icm_in_process(capsys, "cache", action, "--cache", "default")
    assert r.returncode == 0 and str(tmp_path / "cache" / "responses.sqlite") in r.stdout
    assert not (tmp_path / "off").exists() and not (tmp_path / "default").exists()


@pytest.mark.parametrize("stage", ["completed", "unfinished"])
def test_resume_refuses_a_claims_file_edited_since_the_run_started(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stage: str
) -> None:
    """A claim's text edited after the run: `--resume` of the completed run 'rebuilt
    labels.jsonl from its checkpoint', giving the edited claim the label the search gave
    the old one (and export then trained on it); an unfinished run went on with it."""
    claims = tmp_path / "claims.jsonl"
    rows = [{"id": f"c{i}", "claim": f"claim {i}", "label": i % 2 == 0} for i in range(6)]
    claims.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    r = icm_in_process(capsys, *QUICK, "--testbed", str(claims), "--out", str(out))
    assert r.returncode == 0, r.stderr
    if stage == "unfinished":
        (out / "metrics.json").unlink()
    labels = (out / "labels.jsonl").read_bytes()
    claims.write_text(claims.read_text().replace("claim 3", "claim three"))
    line = one_error_line(icm_in_process(capsys, "run", "--resume", str(out), "--quiet"))
    assert "are not those the run started with" in line
    assert (out / "labels.jsonl").read_bytes() == labels
    claims.write_text(claims.read_text().replace("claim three", "claim 3"))  # restored
    r = icm_in_process(capsys, "run", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "labels.jsonl").read_bytes() == labels
