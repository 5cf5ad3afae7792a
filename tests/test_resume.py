"""Checkpoint and resume: killed, interrupted or failed runs continue to the same labels."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUN = [
    "run",
    "--model",
    "synthetic",
    "--size",
    "60",
    "--K",
    "1500",
    "--mp",
    "exact",
    "--batch_size",
    "30",
    "--seed",
    "11",
    "--quiet",
]


def icm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "icm.cli", *args]


def icm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(icm_cmd(*args), capture_output=True, text=True, check=False)


def labels_of(run_dir: Path) -> dict[str, bool | None]:
    rows = [json.loads(x) for x in (run_dir / "labels.jsonl").read_text().splitlines()]
    return {r["id"]: r["label"] for r in rows}


def utilities_of(run_dir: Path) -> list[float]:
    return [json.loads(x)["utility"] for x in (run_dir / "trace.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    r = icm(*RUN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def trace_rows(run_dir: Path) -> int:
    try:
        return (run_dir / "trace.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_and_resume(run: list[str], out: Path, seed: int) -> None:
    """Start `run`, SIGKILL it twelve times, each after a random number of further steps
    (so the run cannot finish first) at whatever point of a step the process is, resuming
    after each kill; then resume to the end."""
    rng = random.Random(seed)
    proc = subprocess.Popen(icm_cmd(*run, "--out", str(out)), stderr=subprocess.PIPE, text=True)
    total = 2 * int(run[run.index("--K") + 1])  # two batches of K steps
    for _ in range(12):
        # At least 20 steps past where the last execution got (so this one has made its
        # first checkpoint), and small enough that twelve kills, with the polling below
        # overshooting each, stay far from the end of the run.
        target = trace_rows(out) + rng.randint(20, total // 40)
        deadline = time.monotonic() + 120
        while trace_rows(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.001, 0.02))
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (out / "config.json").exists()
        proc = subprocess.Popen(
            icm_cmd("run", "--resume", str(out), "--quiet"), stderr=subprocess.PIPE, text=True
        )
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""


def assert_resumed_like(out: Path, uninterrupted: Path, kills: int = 12) -> None:
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert labels_of(out) == labels_of(uninterrupted)
    assert utilities_of(out) == utilities_of(uninterrupted)
    # Every execution is counted: the killed ones as of their last checkpoint. Each resume
    # starts with an empty score cache, so together they scored at least as much as one run.
    segments = metrics["segments"]
    assert [s["status"] for s in segments] == ["killed"] * kills + ["completed"]
    assert all(s["backend"]["requests"] > 0 for s in segments)
    assert metrics["backend"]["requests"] == sum(s["backend"]["requests"] for s in segments)
    whole = json.loads((uninterrupted / "metrics.json").read_text())
    assert [s["status"] for s in whole["segments"]] == ["completed"]
    assert metrics["backend"]["requests"] >= whole["backend"]["requests"]


@pytest.mark.slow  # thirteen processes, each started and killed
def test_sigkill_at_random_moments_then_resume_gives_the_same_labels(
    uninterrupted: Path, tmp_path: Path
) -> None:
    # A checkpoint every step (the run then spends most of its time in the checkpoint
    # writes: temp file, fsync, rename), so the kills often land in the middle of one. The
    # reference run checkpointed at the default interval: the labels do not depend on it.
    out = tmp_path / "run"
    kill_and_resume([*RUN, "--checkpoint-every", "0"], out, seed=1234)
    assert_resumed_like(out, uninterrupted)


# Long enough (2 x 12000 steps, about a second when nothing is fsynced each step) that the
# kills land in the middle of a batch, between checkpoints.
LONG_RUN = [*RUN[: RUN.index("--K") + 1], "12000", *RUN[RUN.index("--K") + 2 :]]


@pytest.fixture(scope="module")
def uninterrupted_long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole_long") / "run"
    r = icm(*LONG_RUN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow  # thirteen processes, each started and killed
@pytest.mark.parametrize("every", [None, "0.01"])
def test_sigkill_between_interval_checkpoints_then_resume_gives_the_same_labels(
    uninterrupted_long: Path, tmp_path: Path, every: str | None
) -> None:
    """With checkpoints on an interval (the default 2 s; 10 ms), a kill leaves trace.jsonl
    rows that state.json does not count: the resume cuts them and redoes those steps."""
    out = tmp_path / "run"
    run = LONG_RUN if every is None else [*LONG_RUN, "--checkpoint-every", every]
    kill_and_resume(run, out, seed=99)
    assert_resumed_like(out, uninterrupted_long)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_and_says_how_to_resume(
    uninterrupted: Path, tmp_path: Path, sig: int
) -> None:
    out = tmp_path / "run"
    # A shell without job control starts background commands with SIGINT ignored, and
    # Python keeps it ignored: give the run the default disposition, as a terminal would.
    proc = subprocess.Popen(
        icm_cmd(*RUN, "--out", str(out)),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    deadline = time.monotonic() + 60
    while trace_rows(out) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"icm run --resume {out}" in err
    assert "Traceback" not in err
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    r = icm("run", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert labels_of(out) == labels_of(uninterrupted)


def test_a_stop_saves_every_finished_step_whatever_the_interval(tmp_path: Path) -> None:
    """Ctrl-C between interval checkpoints: the run saves where it stood when it stopped,
    not where its last interval checkpoint was."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        icm_cmd(*LONG_RUN, "--checkpoint-every", "3600", "--out", str(out)),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    deadline = time.monotonic() + 60
    while trace_rows(out) < 2000 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # Every finished step is counted; the interrupt may land after a step's trace row is
    # written and before the step is handed to the checkpoint (the resume cuts that row).
    counted = json.loads((out / "state.json").read_text())["n_trace_rows"]
    assert trace_rows(out) - 1 <= counted <= trace_rows(out)
    assert counted >= 2000


def test_resume_rules(uninterrupted: Path, tmp_path: Path) -> None:
    # A finished run: says so and does nothing.
    before = (uninterrupted / "trace.jsonl").stat().st_mtime_ns
    r = icm("run", "--resume", str(uninterrupted), "--quiet")
    assert r.returncode == 0 and "already complete" in r.stderr
    assert (uninterrupted / "trace.jsonl").stat().st_mtime_ns == before
    # A changed configuration: an error naming the differing fields.
    r = icm("run", "--resume", str(uninterrupted), "--alpha", "5", "--K", "9")
    assert r.returncode == 2
    assert "differs in K (run: 1500, given: 9), alpha (run: default, given: 5.0)" in r.stderr
    # Never overwrite a run by starting a new one into its directory.
    r = icm(*RUN, "--out", str(uninterrupted))
    assert r.returncode == 2 and "already holds a run" in r.stderr
    # A damaged checkpoint is a clear error, not a traceback.
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "batches.jsonl", "trace.jsonl"):
        (broken / name).write_bytes((uninterrupted / name).read_bytes())
    (broken / "state.json").write_text('{"format": 1, "n_completed": 7, "batch": null}')
    r = icm("run", "--resume", str(broken), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "state.json" in r.stderr or "batches.jsonl" in r.stderr
    assert os.path.exists(broken / "config.json")
    # So is a damaged metrics.json (written when an execution ends; a resume adds to it).
    (broken / "metrics.json").write_text('{"status": "interrupted", "segm')
    r = icm("run", "--resume", str(broken), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{broken / 'metrics.json'}: cannot read it" in r.stderr
    (broken / "state.json").write_bytes((uninterrupted / "state.json").read_bytes())
    (broken / "metrics.json").write_text('{"status": "failed", "segments": [{"backend": 3}]}')
    r = icm("run", "--resume", str(broken), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "metrics.json: field 'segments[0]': not a segment record" in r.stderr
