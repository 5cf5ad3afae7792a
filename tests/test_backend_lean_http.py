"""The lean HTTP/1.1 client of CompletionsScorer (plain http:// servers): every answer
shape a server may send, connections it closes, and what goes to httpx instead."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from icm.backends.completions import CompletionsScorer, RetryPolicy, _LeanHttp

ANSWER = {
    "choices": [{"index": 0, "logprobs": {"top_logprobs": [{" True": -0.2, " False": -1.9}]}}],
    "usage": {"prompt_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}},
}
MODELS = {"object": "list", "data": [{"id": "m"}]}


def framed(body: bytes, shape: str) -> bytes:
    if shape == "length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    if shape == "chunked":
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]))
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    if shape == "close":
        head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        return head + body
    if shape == "http10-no-length":
        return b"HTTP/1.0 200 OK\r\n\r\n" + body
    raise ValueError(shape)


@pytest.fixture
def raw_server() -> Iterator[Any]:
    """A server answering each request in `server.shape`, closing every `server.close_after`
    answers without saying so (as an idle keep-alive timeout does); counts connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    state: dict[str, Any] = {"shape": "length", "close_after": 0, "connections": 0}

    def serve(conn: socket.socket) -> None:
        buffer, answered = b"", 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                body = json.dumps(MODELS if head.startswith(b"GET") else ANSWER).encode()
                conn.sendall(framed(body, state["shape"]))
                answered += 1
                if state["shape"] in ("close", "http10-no-length"):
                    return
                if state["close_after"] and answered >= state["close_after"]:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            state["connections"] += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    yield state
    listener.close()


@pytest.mark.parametrize("shape", ["length", "chunked", "close", "http10-no-length"])
def test_every_answer_framing_is_read(raw_server: Any, shape: str) -> None:
    raw_server["shape"] = shape
    with CompletionsScorer([raw_server["url"]], "m", concurrency=2) as scorer:
        assert scorer._lean is not None  # type: ignore[attr-defined]
        scores = scorer.score_prompts([f"prompt {i}" for i in range(6)])
    assert len(scores) == 6
    assert scores[0][0] > scores[0][1]
    assert scorer.stats.requests == 6 and scorer.stats.retries == 0


def test_keep_alive_connections_are_reused_and_a_stale_one_is_replaced(raw_server: Any) -> None:
    with CompletionsScorer([raw_server["url"]], "m", concurrency=1) as scorer:
        scorer.score_prompts([f"a {i}" for i in range(5)])
        kept = raw_server["connections"]
        raw_server["close_after"] = 2  # the server now drops connections silently
        scorer.score_prompts([f"b {i}" for i in range(6)])
    assert kept <= 2  # one for GET /models (main thread), one for the worker
    assert raw_server["connections"] > kept
    assert scorer.stats.requests == 11 and scorer.stats.retries == 0 and scorer.stats.failures == 0


def test_https_and_proxied_urls_go_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _LeanHttp.serves("http://127.0.0.1:8000/v1", trust_env=False)
    assert not _LeanHttp.serves("https://example.org/v1", trust_env=True)
    assert not _LeanHttp.serves("http://user:pw@example.org/v1", trust_env=True)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "")
    assert not _LeanHttp.serves("http://example.org/v1", trust_env=True)
    assert _LeanHttp.serves("http://example.org/v1", trust_env=False)


def test_a_server_that_does_not_answer_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        from icm.errors import BackendError

        with pytest.raises(BackendError, match=r"timed out after 0\.5 s"):
            CompletionsScorer([url], "m", timeout=0.5, retry=RetryPolicy(retries=0))
    finally:
        listener.close()
