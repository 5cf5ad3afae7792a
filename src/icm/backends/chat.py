"""A post-trained chat model, zero-shot, through the OpenAI-compatible /v1/chat/completions
endpoint: the paper's "Zero-shot (Chat)" baseline.

The claim prompt is sent as the user message; the label score is read from the top-k
logprobs of the first answer token with the same rule as the base-model backends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from icm.backends.base import LabelScorer, label_logprobs
from icm.errors import BackendError

INSTRUCTION = "Answer with one word, True or False.\n\n"


class ChatScorer(LabelScorer):
    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        label_words: tuple[str, str] = ("True", "False"),
        logprobs: int = 20,
        timeout: float = 120.0,
        retries: int = 4,
        api_key: str | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.label_words = label_words
        self.logprobs = logprobs
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.model = model or self._first_model()
        self.model_id = f"chat:{self.model}"

    def _first_model(self) -> str:
        data = self._request("GET", "/v1/models")
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.base_url}/v1/models: no model listed; give --chat-model"
            ) from None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(method, url, json=body)
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                else:
                    if r.status_code >= 400:
                        raise BackendError(f"{url}: HTTP {r.status_code}: {r.text[:200]}")
                    return r.json()
            except (httpx.TransportError, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
            self.stats.retries += attempt < self.retries
            time.sleep(min(8.0, 0.25 * 2**attempt))
        self.stats.failures += 1
        raise BackendError(f"{url}: no usable answer after {self.retries + 1} tries ({last})")

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        out = []
        start = time.monotonic()
        for prompt in prompts:
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": INSTRUCTION + prompt.rstrip()}],
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": self.logprobs,
            }
            data = self._request("POST", "/v1/chat/completions", body)
            try:
                content = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                top = {item["token"]: float(item["logprob"]) for item in content}
            except (KeyError, IndexError, TypeError):
                raise BackendError(
                    f"{self.base_url}/v1/chat/completions: the answer has no top_logprobs; "
                    "the server must support logprobs for chat completions"
                ) from None
            out.append(label_logprobs(top, self.label_words))
            self.stats.requests += 1
            usage = data.get("usage") or {}
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.stats.seconds += time.monotonic() - start
        return out

    def close(self) -> None:
        self.client.close()
