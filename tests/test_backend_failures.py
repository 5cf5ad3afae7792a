"""What happens when a model server fails: retries, then one clear line naming the endpoint.

The misbehaving servers here are tiny local HTTP servers speaking the completions protocol
(they stand in for a broken network or server, not for a language model); the "stopped
server" case uses icm's real llama.cpp server.
"""

from __future__ import annotations

import contextlib
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

    def __init__(
        self,
        reply: Callable[[int, str], tuple[int, Any]],
        models: tuple[int, Any] = (200, {"object": "list", "data": [{"id": "fake-model"}]}),
        keep_alive: bool = True,
    ) -> None:
        self.posts = 0
        self.auth_headers: list[str | None] = []
        self.paths: list[str] = []  # of the POSTs
        self.last_body: Any = None  # of the last POST (for a reply that reads it)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0 closes each connection: close() then refuses every request at once.
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

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
                self._send(*models)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.auth_headers.append(self.headers.get("Authorization"))
                fake.last_body = json.loads(raw) if raw else None
                fake.paths.append(self.path)
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
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(reply: Callable[[int, str], tuple[int, Any]], **kwargs: Any) -> FakeServer:
        servers.append(FakeServer(reply, **kwargs))
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


def error_body(shape: str, status: int, message: str) -> dict[str, Any]:
    """An error answer as llama.cpp/OpenAI shape it, or as vLLM does."""
    if shape == "vllm":
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return {"error": {"message": message, "type": "server_error", "code": status}}


@pytest.mark.parametrize("shape", ["openai", "vllm"])
def test_http_500_is_retried_then_reported_with_the_endpoint(fake_server: Any, shape: str) -> None:
    server = fake_server(lambda n, path: (500, error_body(shape, 500, "GPU on fire")))
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


@pytest.mark.parametrize("shape", ["openai", "vllm"])
def test_a_client_error_is_not_retried(fake_server: Any, shape: str) -> None:
    server = fake_server(lambda n, path: (400, error_body(shape, 400, "prompt too long")))
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
    # vLLM with too small a --max-logprobs answers 400 (see the vLLM-shape tests), not an
    # answer without logprobs: that remedy would be the wrong one here.
    assert "--max-logprobs" not in str(err.value) and "docs/backends.md" in str(err.value)


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
    """Nothing answers: the model cannot be opened, which is found before the run
    directory is made (it held only a failed metrics.json, nothing to resume)."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "run"
    assert_refused_before_the_run_directory(icm_run(url, out), out, url)


def assert_refused_before_the_run_directory(
    r: subprocess.CompletedProcess[str], out: Path, url: str
) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("icm: error: ") and url in last and "cannot connect" in last, last
    assert not out.exists()


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
    assert_refused_before_the_run_directory(icm_run(url, out), out, url)


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


# ---------------------------------------------------------------------------------------
# Issues 17 and 18: answers that would give a silently wrong score, credentials, deadlines,
# dead endpoints
# ---------------------------------------------------------------------------------------


def completion_choices(choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {**completion(None), "choices": choices}


def choice(index: int, top: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "text": " x", "logprobs": {"top_logprobs": [top]}}


def test_choices_are_matched_by_their_index(fake_server: Any) -> None:
    # Index 0 (the prompt's choice) listed second: the first entry must not be taken.
    server = fake_server(
        lambda n, path: (
            200,
            completion_choices([choice(1, {" False": -0.01}), choice(0, {" True": -0.01})]),
        )
    )
    with CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer:
        [(lt, lf)] = scorer.score_prompts([PROMPT])
    assert lt > lf


@pytest.mark.parametrize(
    ("top", "field", "problem"),
    [
        ({" True": "-0.3", " False": -1.0}, "top_logprobs[0][' True']", "expected a number"),
        ({" True": float("nan"), " False": -1.0}, "top_logprobs[0][' True']", "not a finite"),
        ({" True": float("inf")}, "top_logprobs[0][' True']", "not a finite"),
        ({" True": 0.5, " False": -1.0}, "top_logprobs[0][' True']", "is > 0"),
    ],
)
def test_unusable_logprobs_are_one_line_naming_endpoint_and_field(
    fake_server: Any, top: dict[str, Any], field: str, problem: str
) -> None:
    server = fake_server(lambda n, path: (200, completion(top)))
    with (
        CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError) as err,
    ):
        scorer.score_prompts([PROMPT])
    message = str(err.value)
    assert message.startswith(server.url + "/completions: field '"), message
    assert field in message and problem in message and "\n" not in message
    assert server.posts == 1  # not retried: a server bug, not a glitch


def test_choices_without_index_0_are_an_error(fake_server: Any) -> None:
    server = fake_server(
        lambda n, path: (200, completion_choices([choice(1, {" True": -0.1}), choice(2, {})]))
    )
    with (
        CompletionsScorer([server.url], "fake-model", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError, match=r"/completions: field 'choices\[\]\.index'"),
    ):
        scorer.score_prompts([PROMPT])


@pytest.mark.parametrize(
    ("models", "field"),
    [
        ({"data": "fake-model"}, "data"),
        ({"data": [{"id": 7}]}, r"data\[0\]\.id"),
        ({"data": [{"id": "fake-model", "icm": "yes"}]}, r"data\[0\]\.icm"),
        (
            {"data": [{"id": "fake-model", "icm": {"instruction_tuned_because": [1, 2]}}]},
            r"data\[0\]\.icm\.instruction_tuned_because",
        ),
        (
            {"data": [{"id": "fake-model", "icm": {"fingerprint": 12}}]},
            r"data\[0\]\.icm\.fingerprint",
        ),
        (["fake-model"], r"\(body\)"),
    ],
)
def test_malformed_model_lists_are_one_line_naming_the_field(
    fake_server: Any, models: Any, field: str
) -> None:
    server = fake_server(lambda n, path: (200, GOOD), models=(200, models))
    with pytest.raises(BackendError, match=rf"^{server.url}/models: field '{field}': "):
        CompletionsScorer([server.url], "embedded", retry=FAST_RETRY)


def test_credentials_in_a_base_url_are_sent_but_never_shown(fake_server: Any) -> None:
    server = fake_server(lambda n, path: (500, {"error": {"message": "down"}}))
    secret_url = server.url.replace("http://", "http://alice:hunter2pw@")
    with (
        CompletionsScorer([secret_url], "fake-model", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError) as err,
    ):
        scorer.score_prompts([PROMPT])
    assert server.auth_headers[0] is not None and server.auth_headers[0].startswith("Basic ")
    assert "hunter2pw" not in str(err.value) and "alice" not in str(err.value)
    assert server.url.replace("http://", "http://REDACTED@") in str(err.value)


def test_redact_credentials_and_a_redacted_url_given_back() -> None:
    from icm.backends.completions import normalize_base_url, redact_credentials
    from icm.errors import ConfigError

    text = "x http://u:p@h:1/v1 and https://tok@h2/v1?api_key=sk-9&b=1 y"
    assert redact_credentials(text) == (
        "x http://REDACTED@h:1/v1 and https://REDACTED@h2/v1?api_key=REDACTED&b=1 y"
    )
    with pytest.raises(ConfigError, match="credentials removed"):
        normalize_base_url("http://REDACTED@h:1/v1")


class TrickleServer:
    """Answers headers at once, then one byte of the body every `every` seconds."""

    def __init__(self, every: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _trickle(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(every)

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with contextlib.suppress(OSError):  # the client gave up
                    self._trickle(GOOD)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_timeout_bounds_a_whole_request_not_each_read() -> None:
    server = TrickleServer(every=0.1)  # every read answers well within the timeout
    try:
        no_retry = RetryPolicy(retries=0, backoff=0.01)
        with CompletionsScorer([server.url], "fake-model", timeout=1.0, retry=no_retry) as scorer:
            started = time.monotonic()
            with pytest.raises(BackendError, match=r"/completions: timed out after 1 s"):
                scorer.score_prompts([PROMPT])
            assert time.monotonic() - started < 2.0  # the body would take ~20 s
    finally:
        server.close()


def test_a_dead_first_endpoint_does_not_fail_the_run(fake_server: Any) -> None:
    live = fake_server(lambda n, path: (200, GOOD))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    prompts = [PROMPT + "x" * i for i in range(8)]
    no_retry = RetryPolicy(retries=0, backoff=0.01)
    with CompletionsScorer([dead, live.url], "fake-model", retry=no_retry) as scorer:
        assert len(scorer.score_prompts(prompts)) == 8
        assert scorer.stats.failures == 0
    assert live.posts == 8


def test_all_endpoints_dead_names_every_one() -> None:
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    with pytest.raises(BackendError) as err:
        CompletionsScorer(dead, "fake-model", retry=FAST_RETRY)
    message = str(err.value)
    assert message.startswith("none of the 2 servers answers"), message
    assert dead[0] in message and dead[1] in message and "\n" not in message


def test_too_many_logprobs_for_vllm_names_the_remedy_and_is_not_retried() -> None:
    from tests.vllm_shape_server import VllmShapeServer

    with VllmShapeServer(max_logprobs=5) as server:
        scorer = CompletionsScorer([server.url], "embedded", logprobs=20, retry=FAST_RETRY)
        with scorer, pytest.raises(BackendError) as err:
            scorer.score_prompts([PROMPT])
        assert scorer.stats.retries == 0 and scorer.stats.failures == 1
    message = str(err.value)
    assert "HTTP 400: Requested sample logprobs of 20" in message
    assert "--max-logprobs >= 20" in message


def test_vllm_token_ids_instead_of_text_are_refused() -> None:
    from tests.vllm_shape_server import VllmShapeServer

    with VllmShapeServer(token_ids=True) as server:
        scorer = CompletionsScorer([server.url], "embedded", retry=FAST_RETRY)
        with scorer, pytest.raises(BackendError) as err:
            scorer.score_prompts([PROMPT])
    assert "token_id:" in str(err.value)
    assert "without --return-tokens-as-token-ids" in str(err.value)


@pytest.mark.parametrize("details", [True, False])
def test_vllm_without_prompt_tokens_details_is_said_not_counted_as_0(details: bool) -> None:
    from tests.vllm_shape_server import VllmShapeServer

    with (
        VllmShapeServer(prompt_tokens_details=details) as server,
        CompletionsScorer([server.url], "embedded", retry=FAST_RETRY) as scorer,
    ):
        scorer.score_prompts([PROMPT, PROMPT + "x"])
        stats = scorer.stats.as_dict()
        warnings = scorer.warnings
    assert stats["answers_without_cached_token_details"] == (0 if details else 2)
    said = any("--enable-prompt-tokens-details" in w for w in warnings)
    assert said is not details


def test_requests_cut_off_by_a_fatal_400_are_not_retries(fake_server: Any) -> None:
    def reply(n: int, path: str) -> tuple[int, Any]:
        if n == 1:
            time.sleep(0.4)  # the other two requests get their 503 meanwhile
            return 400, {"error": {"message": "bad request"}}
        return 503, {"error": "busy"}

    server = fake_server(reply)
    slow_retry = RetryPolicy(retries=3, backoff=2.0)
    scorer = CompletionsScorer([server.url], "fake-model", retry=slow_retry, concurrency=3)
    started = time.monotonic()
    with scorer, pytest.raises(BackendError, match="HTTP 400: bad request"):
        scorer.score_prompts(["A " + PROMPT, "B " + PROMPT, "C " + PROMPT])
    assert time.monotonic() - started < 1.0  # the fatal error ends the call at once
    assert server.posts == 3
    # The two 503s were waiting to be retried when the scorer closed: never sent again.
    assert scorer.stats.retries == 0 and scorer.stats.failures == 1


def test_icm_run_writes_and_prints_no_url_credentials(fake_server: Any, tmp_path: Path) -> None:
    server = fake_server(lambda n, path: (500, {"error": {"message": "internal"}}))
    secret_url = server.url.replace("http://", "http://alice:hunter2pw@")
    out = tmp_path / "run"
    r = icm_run(secret_url, out)
    shown = server.url.replace("http://", "http://REDACTED@")
    last = assert_clean_failure(r, out, shown + "/completions")
    assert "HTTP 500" in last
    assert "hunter2pw" not in r.stdout + r.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert b"hunter2pw" not in path.read_bytes(), path
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["base_url"] == [shown]
    # A resume without the URL again says so in one line (not a 401 from the server).
    resumed = subprocess.run(
        [sys.executable, "-m", "icm.cli", "run", "--resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 2
    assert "credentials removed" in resumed.stderr and "Traceback" not in resumed.stderr
