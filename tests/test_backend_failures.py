"""What happens when a model server fails: retries, then one clear line naming the endpoint.

The misbehaving servers here are tiny local HTTP servers speaking the completions protocol
(they stand in for a broken network or server, not for a language model); the "stopped
server" case uses icm's real llama.cpp server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from icm.backends.completions import CompletionsScorer, RetryPolicy
from icm.errors import BackendError

FAST_RETRY = RetryPolicy(retries=2, backoff=0.01)
SECRET = "sk-test-SECRET-41f3c9"
PROMPT = "Question: What is 2 + 2?\nClaim: 2 + 2 = 4\nI think this claim is "


def completion(logprobs: dict[str, float] | None) -> dict[str, Any]:
    return {
        "object": "text_completion",
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "text": " True",
                "finish_reason": "length",
                "logprobs": None if logprobs is None else {"top_logprobs": [logprobs]},
            }
        ],
        "usage": {"prompt_tokens": 17, "completion_tokens": 1, "total_tokens": 18},
    }


class FakeServer:
    """An HTTP server in a thread; `reply(n, path)` gives (status, body) for the n-th POST."""

    def __init__(self, reply: Callable[[int, str], tuple[int, Any]]) -> None:
        self.posts = 0
        self.auth_headers: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.auth_headers.append(self.headers.get("Authorization"))
                self._send(200, {"object": "list", "data": [{"id": "fake-model"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.auth_headers.append(self.headers.get("Authorization"))
                fake.posts += 1
                self._send(*reply(fake.posts, self.path))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


GOOD = completion({" True": -0.3, " False": -1.4, " true": -4.0})


@pytest.fixture
def fake_server() -> Iterator[Callable[[Callable[[int, str], tuple[int, Any]]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(reply: Callable[[int, str], tuple[int, Any]]) -> FakeServer:
        servers.append(FakeServer(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------


def test_http_500_is_retried_then_reported_with_the_endpoint(fake_server: Any) -> None:
    server = fake_server(lambda n, path: (500, {"error": {"message": "GPU on fire"}}))
    with CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer:
        with pytest.raises(BackendError) as err:
            scorer.score_prompts([PROMPT])
        assert scorer.stats.retries == 2 and scorer.stats.failures == 1
    assert server.posts == 3  # the first try and two retries
    message = str(err.value)
    assert message.startswith(server.url + "/completions: HTTP 500: GPU on fire")
    assert "after 3 attempts" in message and "\n" not in message


def test_429_and_503_are_retried_until_an_answer(fake_server: Any) -> None:
    replies = {1: (429, {"error": "slow down"}), 2: (503, {"error": "busy"})}
    server = fake_server(lambda n, path: replies.get(n, (200, GOOD)))
    with CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer:
        [(lt, lf)] = scorer.score_prompts([PROMPT])
        assert scorer.stats.retries == 2 and scorer.stats.failures == 0
        assert scorer.stats.requests == 1 and scorer.stats.prompt_tokens == 17
    assert lt > lf


def test_a_client_error_is_not_retried(fake_server: Any) -> None:
    server = fake_server(lambda n, path: (400, {"error": {"message": "prompt too long"}}))
    with (
        CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError, match=r"/v1/completions: HTTP 400: prompt too long$"),
    ):
        scorer.score_prompts([PROMPT])
    assert server.posts == 1


def test_a_server_without_logprobs_gets_an_explanation(fake_server: Any) -> None:
    server = fake_server(lambda n, path: (200, completion(None)))
    with (
        CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError) as err,
    ):
        scorer.score_prompts([PROMPT])
    assert str(err.value).startswith(server.url + "/completions: the response has no logprobs")
    assert "--max-logprobs" in str(err.value) and "docs/backends.md" in str(err.value)


def test_nothing_listening_is_a_connection_error_naming_the_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError) as err:
        CompletionsScorer([url], "fake-model", retry=FAST_RETRY)
    assert str(err.value).startswith(url + "/models: cannot connect")


def test_requests_are_spread_over_several_endpoints(fake_server: Any) -> None:
    a = fake_server(lambda n, path: (200, GOOD))
    b = fake_server(lambda n, path: (200, GOOD))
    prompts = [PROMPT + "x" * i for i in range(12)]
    with CompletionsScorer([a.url, b.url], "fake-model", retry=FAST_RETRY) as scorer:
        assert len(scorer.score_prompts(prompts)) == 12
    assert a.posts + b.posts == 12
    assert a.posts >= 3 and b.posts >= 3


def test_a_dead_endpoint_is_routed_around(fake_server: Any) -> None:
    live = fake_server(lambda n, path: (200, GOOD))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    prompts = [PROMPT + "x" * i for i in range(6)]
    with CompletionsScorer([live.url, dead], "fake-model", retry=FAST_RETRY) as scorer:
        assert len(scorer.score_prompts(prompts)) == 6
        assert scorer.stats.retries >= 1 and scorer.stats.failures == 0
    assert live.posts == 6


def test_the_api_key_is_sent_as_bearer_from_env_or_dot_env(
    fake_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fake_server(lambda n, path: (200, GOOD))
    monkeypatch.setenv("ICM_API_KEY", SECRET)
    with CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer:
        scorer.score_prompts([PROMPT])
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}
    monkeypatch.delenv("ICM_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text('ICM_API_KEY="sk-from-dot-env"\n')
    server.auth_headers.clear()
    with CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer:
        scorer.score_prompts([PROMPT])
    assert set(server.auth_headers) == {"Bearer sk-from-dot-env"}


# ---------------------------------------------------------------------------------------
# `icm run` against failing servers: exit 2, one line, the run directory kept
# ---------------------------------------------------------------------------------------


def icm_run(base_url: str, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "icm.cli",
            "run",
            "--base-url",
            base_url,
            "--model",
            "fake-model",
            "--size",
            "4",
            "--K",
            "3",
            "--cache",
            "off",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ICM_RETRIES": "1", "ICM_BACKOFF": "0.01", **env},
    )


def assert_clean_failure(r: subprocess.CompletedProcess[str], out: Path, endpoint: str) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("icm: error: "), r.stderr
    assert endpoint in last
    assert (out / "config.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"
    return last


def test_icm_run_reports_a_server_error(fake_server: Any, tmp_path: Path) -> None:
    server = fake_server(lambda n, path: (500, {"error": {"message": "internal"}}))
    out = tmp_path / "run"
    r = icm_run(server.url, out, ICM_API_KEY=SECRET)
    last = assert_clean_failure(r, out, server.url + "/completions")
    assert "HTTP 500" in last
    # The key went to the server but is nowhere in what icm printed or wrote.
    assert f"Bearer {SECRET}" in server.auth_headers
    assert SECRET not in r.stdout + r.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_icm_run_reports_a_server_without_logprobs(fake_server: Any, tmp_path: Path) -> None:
    server = fake_server(lambda n, path: (200, completion(None)))
    out = tmp_path / "run"
    last = assert_clean_failure(icm_run(server.url, out), out, server.url + "/completions")
    assert "no logprobs" in last


def test_icm_run_reports_a_wrong_port(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "run"
    last = assert_clean_failure(icm_run(url, out), out, url)
    assert "cannot connect" in last


@pytest.mark.model
def test_a_stopped_server_is_reported(tmp_path: Path) -> None:
    from icm.backends.default_model import packaged_model_path
    from icm.backends.embedded import embedded_server

    with embedded_server(packaged_model_path()) as server:
        scorer = CompletionsScorer([server.base_url], "embedded", retry=FAST_RETRY)
        assert len(scorer.score_prompts([PROMPT])) == 1
        url = server.base_url
    with scorer, pytest.raises(BackendError, match=r"/v1/completions: cannot connect"):
        scorer.score_prompts([PROMPT + "x"])
    out = tmp_path / "run"
    last = assert_clean_failure(icm_run(url, out), out, url)
    assert "cannot connect" in last


def test_sigterm_during_retries_ends_the_run_promptly(fake_server: Any, tmp_path: Path) -> None:
    server = fake_server(lambda n, path: (503, {"error": "busy"}))
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "icm.cli", "run", "--base-url", server.url),
            *("--model", "fake-model", "--size", "4", "--cache", "off", "--out", str(out)),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ICM_RETRIES": "100", "ICM_BACKOFF": "0.2"},
    )
    start = time.monotonic()
    while server.posts < 2 and time.monotonic() - start < 60:
        time.sleep(0.05)
    assert server.posts >= 2
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 130, stderr
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
