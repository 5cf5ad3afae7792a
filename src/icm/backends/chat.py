"""A post-trained chat model, zero-shot, through the OpenAI-compatible /v1/chat/completions
endpoint: the paper's "Zero-shot (Chat)" baseline.

The claim prompt is sent as the user message; the label score is read from the top-k
logprobs of the first answer token with the same rule as the base-model backends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from icm.backends.base import LabelScorer, WarningSource, label_logprobs
from icm.backends.completions import (
    MalformedAnswer,
    api_key_from_environment,
    choose_authorization,
    normalize_base_url,
    redact_credentials,
    redact_secrets,
    top_logprobs_of,
    url_secrets,
)
from icm.errors import BackendError, ConfigError

INSTRUCTION = "Answer with one word, True or False.\n\n"


class ChatScorer(LabelScorer, WarningSource):
    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        label_words: tuple[str, str] = ("True", "False"),
        logprobs: int = 20,
        timeout: float = 120.0,
        concurrency: int = 4,
        retries: int = 4,
        api_key: str | None = None,
    ) -> None:
        super().__init__()
        if logprobs < 1 or concurrency < 1 or not timeout > 0:
            raise ConfigError("--logprobs and --concurrency must be >= 1, --timeout > 0")
        # One normal form for completions and chat: ".../v1" whether or not it was given.
        base_url = normalize_base_url(base_url, flag="--chat-base-url")
        self.label_words = label_words
        self.logprobs = logprobs
        self.retries = retries
        self._start_warnings()
        # The same key as the completions backend: ICM_API_KEY / OPENAI_API_KEY / ./.env.
        api_key = api_key if api_key is not None else api_key_from_environment()
        self._api_key = api_key
        self._secrets = url_secrets(base_url)
        [self.base_url] = choose_authorization([base_url], api_key, "--chat-base-url", self.warn)
        self.shown_url = redact_credentials(self.base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        # Prompts of one call are sent `concurrency` at a time (the answers keep their order).
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._stats_lock = threading.Lock()
        self.model = model or self._first_model()
        self.model_id = f"chat:{self.model}"

    def _first_model(self) -> str:
        data = self._request("GET", "/models")
        try:
            model = data["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            model = None
        if not isinstance(model, str):
            raise BackendError(
                f"{self.shown_url}/models: field 'data[0].id': no model listed; give --chat-model"
            )
        return model

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        shown = self.shown_url + path
        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(method, url, json=body)
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                else:
                    if r.status_code >= 400:
                        text = " ".join(r.text[:200].split())
                        raise BackendError(f"{shown}: HTTP {r.status_code}: {self._redact(text)}")
                    return r.json()
            except (httpx.TransportError, ValueError) as e:
                last = f"{type(e).__name__}: {self._redact(str(e))}"
            if attempt == self.retries:
                break
            time.sleep(min(8.0, 0.25 * 2**attempt))
            with self._stats_lock:
                self.stats.retries += 1  # counted when the request is sent again
        with self._stats_lock:
            self.stats.failures += 1
        raise BackendError(f"{shown}: no usable answer after {self.retries + 1} tries ({last})")

    def _redact(self, text: str) -> str:
        return redact_secrets(text, self._secrets, self._api_key)

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        start = time.monotonic()
        try:
            if self.concurrency == 1 or len(prompts) <= 1:
                return [self._score_one(p) for p in prompts]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="icm-chat")
            futures = [self._pool.submit(self._score_one, p) for p in prompts]
            try:
                return [f.result() for f in futures]
            finally:  # a failure: the prompts not yet sent are not sent
                for f in futures:
                    f.cancel()
        finally:
            with self._stats_lock:
                self.stats.seconds += time.monotonic() - start

    def _score_one(self, prompt: str) -> tuple[float, float]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": INSTRUCTION + prompt.rstrip()}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": self.logprobs,
        }
        data = self._request("POST", "/chat/completions", body)
        try:  # the choice with index 0, its values checked, as for completions
            top = top_logprobs_of(data)
        except MalformedAnswer as e:
            raise BackendError(f"{self.shown_url}/chat/completions: {e}") from None
        if not top:
            raise BackendError(
                f"{self.shown_url}/chat/completions: the answer has no top_logprobs; "
                "the server must support logprobs for chat completions"
            )
        usage = data.get("usage") or {}
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        return label_logprobs(top, self.label_words)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
