"""A flaky model server: the run completes with the labels of a fault-free run, or stops with
a clear error and resumes to them. The server stands in for the model (its answers are a
fixed function of the prompt) so that a thousand requests take seconds; the real model
behind icm's own server is tested in test_backend_*.py and test_embedded_server.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FAULTS = ("drop", "http500", "http429", "stall", "malformed", "no_logprobs")


def answer(prompt: str) -> dict[str, float]:
    h = hashlib.sha256(prompt.encode()).digest()
    gap = (h[0] - 128) / 32.0
    return {" True": -math.log1p(math.exp(-gap)), " False": -math.log1p(math.exp(gap))}


class FlakyServer:
    """OpenAI-style /v1/completions that fails a set share of requests, in every way."""

    def __init__(self, fault_rate: float, seed: int, stall: float) -> None:
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.stall = stall
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.reply(200, json.dumps({"data": [{"id": "flaky"}]}).encode())

            def do_POST(self) -> None:
                # The client gives up on a stalled answer: as intended.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.answer()

            def answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.counts["requests"] += 1
                    fault = (
                        server.rng.choice(FAULTS)
                        if server.rng.random() < server.fault_rate
                        else None
                    )
                    if fault:
                        server.counts[fault] += 1
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.connection.close()
                    return
                if fault in ("http500", "http429"):
                    self.reply(int(fault[4:]), b'{"error": "injected"}')
                    return
                if fault == "stall":
                    time.sleep(server.stall)
                if fault == "malformed":
                    self.reply(200, b'{"choices": [{"text": " True", "logprobs": ')
                    return
                top = {} if fault == "no_logprobs" else answer(body["prompt"])
                choice = {
                    "text": " True",
                    "index": 0,
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [" True"],
                        "token_logprobs": [-0.1],
                        "top_logprobs": [top] if top else None,
                    },
                }
                usage = {"prompt_tokens": len(body["prompt"]) // 4, "completion_tokens": 1}
                self.reply(200, json.dumps({"choices": [choice], "usage": usage}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


# fmt: off
RUN = ["--testbed", "arithmetic", "--size", "40", "--K", "250", "--mp", "exact",
       "--model", "flaky", "--cache", "off", "--timeout", "0.5", "--concurrency", "4",
       "--quiet"]
# fmt: on


def icm(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ICM_RETRIES": "6", "ICM_BACKOFF": "0.01", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def labels(run_dir: Path) -> dict[str, bool | None]:
    rows = [json.loads(x) for x in (run_dir / "labels.jsonl").read_text().splitlines()]
    return {r["id"]: r["label"] for r in rows}


@pytest.mark.slow  # over a thousand requests, a stall each second of them
def test_twenty_percent_faults_same_labels(tmp_path: Path) -> None:
    clean = FlakyServer(0.0, seed=1, stall=0)
    try:
        r = icm(["run", *RUN, "--base-url", clean.url, "--out", str(tmp_path / "clean")])
        assert r.returncode == 0, r.stderr
    finally:
        clean.close()

    flaky = FlakyServer(0.2, seed=2, stall=1.0)
    out = tmp_path / "flaky"
    stops: list[str] = []
    try:
        r = icm(["run", *RUN, "--base-url", flaky.url, "--out", str(out)])
        while r.returncode != 0:
            # Only a clear one-line error naming the endpoint, never a traceback.
            assert r.returncode == 2, r.stderr
            assert "Traceback" not in r.stderr
            last = [line for line in r.stderr.splitlines() if line.startswith("icm: error:")]
            assert last and "127.0.0.1" in last[-1], r.stderr
            stops.append(last[-1])
            assert len(stops) < 30
            r = icm(["run", "--resume", str(out), "--base-url", flaky.url, "--quiet"])
    finally:
        flaky.close()
    metrics = json.loads((out / "metrics.json").read_text())
    counts = flaky.counts
    injected = sum(counts[f] for f in FAULTS)
    print(
        f"\nrequests {counts['requests']}, faults injected {injected} "
        f"({dict((f, counts[f]) for f in FAULTS)}), retries in the last session "
        f"{metrics['backend']['retries']}, runs stopped and resumed {len(stops)}"
    )
    assert counts["requests"] >= 1000
    assert 0.15 <= injected / counts["requests"] <= 0.25
    assert labels(out) == labels(tmp_path / "clean")
    assert metrics["status"] == "completed"


@pytest.mark.slow  # dozens of stops, each resumed by a new process
def test_out_of_retries_stops_cleanly_and_resumes_to_the_same_labels(tmp_path: Path) -> None:
    """With one retry, two faults in a row stop the run; the response cache keeps what was
    answered, so each resume gets further, and the labels end as a fault-free run's."""
    clean = FlakyServer(0.0, seed=1, stall=0)
    small = [*RUN]
    small[small.index("--size") + 1] = "16"
    small[small.index("--K") + 1] = "60"
    try:
        r = icm(["run", *small, "--base-url", clean.url, "--out", str(tmp_path / "clean")])
        assert r.returncode == 0, r.stderr
    finally:
        clean.close()
    flaky = FlakyServer(0.3, seed=3, stall=1.0)
    out = tmp_path / "flaky"
    cache = ["--cache", str(tmp_path / "responses.sqlite")]
    small[small.index("--cache") : small.index("--cache") + 2] = cache
    env = {"ICM_RETRIES": "1"}
    stops = 0
    try:
        r = icm(["run", *small, "--base-url", flaky.url, "--out", str(out)], env)
        while r.returncode != 0:
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert f"continue with: icm run --resume {out}" in r.stderr
            stops += 1
            assert stops < 200
            r = icm(["run", "--resume", str(out), "--quiet"], env)
    finally:
        flaky.close()
    print(f"\nrequests {flaky.counts['requests']}, runs stopped and resumed {stops}")
    assert stops >= 1
    assert labels(out) == labels(tmp_path / "clean")


def test_the_api_key_is_nowhere_a_successful_run_writes(tmp_path: Path) -> None:
    secret = "sk-test-SECRET-7d1e0b"
    server = FlakyServer(0.0, seed=4, stall=0)
    out, cache_dir = tmp_path / "run", tmp_path / "cache"
    args = [*RUN]
    args[args.index("--cache") : args.index("--cache") + 2] = []  # the default cache, on
    try:
        r = icm(
            ["run", *args, "--base-url", server.url, "--out", str(out)],
            {"ICM_API_KEY": secret, "ICM_CACHE_DIR": str(cache_dir)},
        )
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert (cache_dir / "responses.sqlite").is_file()
    assert secret not in r.stdout + r.stderr
    written = [p for d in (out, cache_dir) for p in d.rglob("*") if p.is_file()]
    assert len(written) >= 8
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
