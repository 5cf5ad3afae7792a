"""A loopback server that answers exactly in vLLM's OpenAI-compatible shapes.

The scores come from a real model: each /v1/completions request is passed to icm's llama.cpp
server (`upstream`) and its answer re-dressed as vLLM dresses one (vllm/entrypoints/openai:
CompletionLogProbs, UsageInfo, ErrorResponse), with vLLM's switches:

- `max_logprobs` (vLLM's --max-logprobs, default 20): more asked for is a 400
  "Requested sample logprobs of N, which is greater than max allowed: M";
- `prompt_tokens_details` (--enable-prompt-tokens-details, off in vLLM by default):
  without it usage.prompt_tokens_details is null;
- `token_ids` (--return-tokens-as-token-ids): tokens and top_logprobs keys become
  "token_id:N";
- `api_key` (--api-key): requests without `Authorization: Bearer KEY` get 401.

Shapes followed: choices carry their `index`; logprobs.top_logprobs is a list (one dict
per generated token) of up to k+1 entries (the k most likely and the sampled token);
errors are {"object": "error", "message", "type", "param", "code"}. /v1/chat/completions
answers in the chat shape (logprobs.content[0].top_logprobs as a list of {token, logprob,
bytes}), scoring the user message as a plain prompt, or from `fixed_top` without upstream.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

MODEL = "vllm-model"


def vllm_error(status: HTTPStatus, message: str, kind: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


class VllmShapeServer:
    def __init__(
        self,
        upstream: str | None = None,
        *,
        model: str = MODEL,
        max_logprobs: int = 20,
        prompt_tokens_details: bool = True,
        token_ids: bool = False,
        api_key: str | None = None,
        fixed_top: dict[str, float] | None = None,
    ) -> None:
        self.upstream = upstream
        self.model = model
        self.max_logprobs = max_logprobs
        self.prompt_tokens_details = prompt_tokens_details
        self.token_ids = token_ids
        self.api_key = api_key
        self.fixed_top = fixed_top or {" True": -0.2, " False": -1.8, " the": -4.0}
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self._client = httpx.Client(timeout=120, trust_env=False)
        self._token_ids: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authorized(self) -> bool:
                auth = self.headers.get("Authorization")
                server.requests.append((self.path, auth))
                if server.api_key is None or auth == f"Bearer {server.api_key}":
                    return True
                self.send(HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})  # as vLLM's
                return False

            def do_GET(self) -> None:
                if not self.authorized():
                    return
                if self.path == "/v1/models":
                    self.send(HTTPStatus.OK, server.models())
                else:
                    self.send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})  # FastAPI's

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not self.authorized():
                    return
                if self.path == "/v1/completions":
                    self.send(*server.completion(body))
                elif self.path == "/v1/chat/completions":
                    self.send(*server.chat_completion(body))
                else:
                    self.send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._client.close()

    def __enter__(self) -> VllmShapeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answers -----------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        card = {
            "id": self.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": 8192,
        }
        return {"object": "list", "data": [card]}

    def _check(self, body: dict[str, Any], k: int | None) -> tuple[int, Any] | None:
        if body.get("model") != self.model:
            message = f"The model `{body.get('model')}` does not exist."
            return HTTPStatus.NOT_FOUND, vllm_error(HTTPStatus.NOT_FOUND, message, "NotFoundError")
        if k is not None and k > self.max_logprobs:
            message = (
                f"Requested sample logprobs of {k}, which is greater than max allowed: "
                f"{self.max_logprobs}"
            )
            return HTTPStatus.BAD_REQUEST, vllm_error(
                HTTPStatus.BAD_REQUEST, message, "BadRequestError"
            )
        return None

    def _next_token(self, prompt: str, k: int) -> tuple[list[tuple[str, float]], int, int]:
        """(top k as (text, logprob), prompt tokens, cached prompt tokens) from upstream."""
        if self.upstream is None:
            top = sorted(self.fixed_top.items(), key=lambda kv: -kv[1])[:k]
            return top, len(prompt) // 4 + 1, 0
        r = self._client.post(
            self.upstream + "/completions",
            json={"prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": k},
        )
        r.raise_for_status()
        answer = r.json()
        top_dict = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        top = sorted(top_dict.items(), key=lambda kv: -kv[1])
        usage = answer["usage"]
        return top, usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]

    def _token(self, text: str) -> str:
        if not self.token_ids:
            return text
        return f"token_id:{self._token_ids.setdefault(text, 1000 + len(self._token_ids))}"

    def _usage(self, n_prompt: int, n_cached: int) -> dict[str, Any]:
        return {
            "prompt_tokens": n_prompt,
            "total_tokens": n_prompt + 1,
            "completion_tokens": 1,
            "prompt_tokens_details": (
                {"cached_tokens": n_cached} if self.prompt_tokens_details else None
            ),
        }

    def completion(self, body: dict[str, Any]) -> tuple[int, Any]:
        k = body.get("logprobs")
        refused = self._check(body, k)
        if refused is not None:
            return refused
        prompt = body["prompt"]
        top, n_prompt, n_cached = self._next_token(prompt, max(k or 0, 1))
        sampled_text, sampled_lp = top[0]  # temperature 0: the most likely token
        logprobs = None
        if k is not None:
            # vLLM's entry holds the top k and the sampled token (k+1 when it is not
            # among them; with greedy decoding it always is).
            entries = dict(top[:k])
            entries.setdefault(sampled_text, sampled_lp)
            logprobs = {
                "text_offset": [len(prompt)],
                "token_logprobs": [sampled_lp],
                "tokens": [self._token(sampled_text)],
                "top_logprobs": [{self._token(t): lp for t, lp in entries.items()}],
            }
        choice = {
            "index": 0,
            "text": sampled_text,
            "logprobs": logprobs,
            "finish_reason": "length",
            "stop_reason": None,
            "prompt_logprobs": None,
        }
        return HTTPStatus.OK, {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": self._usage(n_prompt, n_cached),
        }

    def chat_completion(self, body: dict[str, Any]) -> tuple[int, Any]:
        k = body.get("top_logprobs") if body.get("logprobs") else None
        refused = self._check(body, k)
        if refused is not None:
            return refused
        prompt = body["messages"][-1]["content"]
        top, n_prompt, n_cached = self._next_token(prompt, max(k or 0, 1))
        text, lp = top[0]
        content = None
        if k is not None:
            entries = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top[:k]]
            content = [
                {
                    "token": text,
                    "logprob": lp,
                    "bytes": list(text.encode()),
                    "top_logprobs": entries,
                }
            ]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "tool_calls": []},
            "logprobs": None if content is None else {"content": content},
            "finish_reason": "length",
            "stop_reason": None,
        }
        return HTTPStatus.OK, {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": self._usage(n_prompt, n_cached),
        }
