"""The chat baseline sends a call's prompts --concurrency at a time, answers in order."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from icm.backends.chat import ChatScorer
from icm.errors import BackendError, ConfigError


class _Handler(BaseHTTPRequestHandler):
    server: Any

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
        self._send(200, {"data": [{"id": "chat-model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        with state["lock"]:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
        time.sleep(0.05)
        with state["lock"]:
            state["active"] -= 1
        content = body["messages"][0]["content"]
        if "FAIL" in content:
            self._send(400, {"error": {"message": "bad prompt"}})
            return
        yes = "= 4" in content
        top = [{"token": "True", "logprob": -0.1 if yes else -3.0},
               {"token": "False", "logprob": -3.0 if yes else -0.1}]  # fmt: skip
        self._send(
            200, {"choices": [{"index": 0, "logprobs": {"content": [{"top_logprobs": top}]}}]}
        )


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed its connection early (the cancelled requests of a failed
        call) is no error of the test; printed, its traceback reached the stderr that a
        later test of the same worker captures."""


@pytest.fixture
def chat_server() -> Any:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.state = {"lock": threading.Lock(), "active": 0, "most": 0}  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def prompt(total: int) -> str:
    return f"Question: What is 2 + 2?\nClaim: 2 + 2 = {total}\nI think this claim is "


def test_prompts_go_concurrency_at_a_time_and_come_back_in_order(chat_server: Any) -> None:
    url = f"http://127.0.0.1:{chat_server.server_address[1]}"
    prompts = [prompt(4 if i % 3 == 0 else 5) for i in range(12)]
    with ChatScorer(url, None, retries=0, api_key="", concurrency=6, timeout=5) as scorer:
        started = time.monotonic()
        scores = scorer.score_prompts(prompts)
        seconds = time.monotonic() - started
    assert [lt > lf for lt, lf in scores] == [i % 3 == 0 for i in range(12)]
    assert chat_server.state["most"] == 6
    assert seconds < 12 * 0.05  # not one at a time
    assert scorer.stats.requests == 12


def test_one_at_a_time_and_a_failure_in_a_concurrent_call(chat_server: Any) -> None:
    url = f"http://127.0.0.1:{chat_server.server_address[1]}"
    with ChatScorer(url, None, retries=0, api_key="", concurrency=1) as scorer:
        scorer.score_prompts([prompt(4), prompt(5)])
    assert chat_server.state["most"] == 1
    with (
        ChatScorer(url, None, retries=0, api_key="", concurrency=4) as scorer,
        pytest.raises(BackendError, match=r"HTTP 400: .*bad prompt"),
    ):
        scorer.score_prompts([prompt(4), "FAIL", prompt(5)])
    with pytest.raises(ConfigError, match="--concurrency"):
        ChatScorer(url, None, api_key="", concurrency=0)
