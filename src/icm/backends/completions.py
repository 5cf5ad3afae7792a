"""A LabelScorer over OpenAI-compatible /v1/completions servers (vLLM, llama.cpp, icm serve).

Each prompt is one request: max_tokens 1, temperature 0, logprobs k. The label log
probabilities come from the top-k logprobs of the first generated position with the
original code's rule (base.label_logprobs). Prompts of one call are sent in sorted order,
so consecutive requests share the longest prefixes and a server's prefix cache hits; the
results come back in the caller's order.
"""

from __future__ import annotations

import math
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from icm.backends.base import LabelScorer, label_logprobs
from icm.errors import BackendError, ConfigError

API_KEY_VARIABLES = ("ICM_API_KEY", "OPENAI_API_KEY")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
NO_LOGPROBS_HINT = (
    "the server must return top logprobs on /v1/completions: for vLLM start it with "
    "--max-logprobs >= the requested k; chat-only APIs cannot score (docs/backends.md)"
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request on connection errors, timeouts, 429 and 5xx.

    Delays grow as backoff * 2^attempt, capped at max_backoff, each multiplied by a random
    factor in [0.5, 1.5) so that many clients do not retry in step. A Retry-After header
    (429/503) is honoured up to max_backoff."""

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """ICM_RETRIES and ICM_BACKOFF (seconds) override the defaults."""
        d = cls()
        try:
            retries = int(os.environ.get("ICM_RETRIES", d.retries))
            backoff = float(os.environ.get("ICM_BACKOFF", d.backoff))
        except ValueError as e:
            raise ConfigError(f"ICM_RETRIES / ICM_BACKOFF: not a number ({e})") from None
        if retries < 0 or backoff < 0:
            raise ConfigError("ICM_RETRIES / ICM_BACKOFF: must be >= 0")
        return cls(retries=retries, backoff=backoff, max_backoff=d.max_backoff)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        return min(self.backoff * 2**attempt, self.max_backoff) * random.uniform(0.5, 1.5)


def api_key_from_environment(env_file: Path | None = None) -> str | None:
    """ICM_API_KEY or OPENAI_API_KEY from the environment, else from ./.env."""
    for name in API_KEY_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    path = env_file if env_file is not None else Path.cwd() / ".env"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    found: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[name.strip()] = value
    for name in API_KEY_VARIABLES:
        if found.get(name):
            return found[name]
    return None


def normalize_base_url(url: str) -> str:
    """'http://host:8000', 'http://host:8000/' and 'http://host:8000/v1' all give
    'http://host:8000/v1'."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--base-url: expected http(s)://host[:port][/v1], got '{url}'")
    return url if url.endswith("/v1") else url + "/v1"


def top_logprobs_of(response: Any) -> Mapping[str, float] | None:
    """The next-token top logprobs in a completions response, as {token text: logprob}.

    Understands OpenAI/vLLM/llama-cpp-python (choices[0].logprobs.top_logprobs[0] as a
    dict), lists of {token, logprob} entries there, llama.cpp server's chat-style
    choices[0].logprobs.content[0].top_logprobs, and its native
    completion_probabilities[0].top_logprobs. None when the response has none."""
    if not isinstance(response, dict):
        return None
    first: Any = None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        logprobs = choices[0].get("logprobs")
        if isinstance(logprobs, dict):
            if isinstance(logprobs.get("top_logprobs"), list) and logprobs["top_logprobs"]:
                first = logprobs["top_logprobs"][0]
            elif isinstance(logprobs.get("content"), list) and logprobs["content"]:
                entry = logprobs["content"][0]
                first = entry.get("top_logprobs") if isinstance(entry, dict) else None
    if first is None and isinstance(response.get("completion_probabilities"), list):
        probs = response["completion_probabilities"]
        if probs and isinstance(probs[0], dict):
            first = probs[0].get("top_logprobs") or probs[0].get("probs")
    if isinstance(first, dict):
        return {str(k): float(v) for k, v in first.items() if isinstance(v, (int, float))}
    if isinstance(first, list):
        out: dict[str, float] = {}
        for entry in first:
            if not isinstance(entry, dict):
                continue
            token = entry.get("token", entry.get("tok_str"))
            if "logprob" in entry:
                value = entry["logprob"]
            elif "prob" in entry and entry["prob"] > 0:
                value = math.log(entry["prob"])
            else:
                continue
            if isinstance(token, str) and isinstance(value, (int, float)):
                # Same text twice (byte tokens): the probabilities add.
                out[token] = (
                    math.log(math.exp(out[token]) + math.exp(value)) if token in out else value
                )
        return out
    return None


class _Job:
    """One prompt to score; a worker thread fills result or error and sets done."""

    __slots__ = ("cancelled", "done", "error", "prompt", "result")

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.done = threading.Event()
        self.result: tuple[float, float] | None = None
        self.error: BaseException | None = None
        self.cancelled = False


class _Endpoint:
    def __init__(self, base: str) -> None:
        self.base = base
        self.completions = base + "/completions"
        self.models = base + "/models"
        self.in_flight = 0


class CompletionsScorer(LabelScorer):
    """Scores prompts on one or more OpenAI-compatible completions endpoints.

    model: the name sent in each request; "embedded" means "ask GET /v1/models and use the
    first id". Requests are spread over the endpoints, to the one with the fewest requests
    in flight (round robin among equals); a retried request goes to another endpoint when
    there is one. sort_prompts=False sends prompts in the caller's order (for benchmarks);
    extra_body adds fields to every request (e.g. vLLM's "top_k", icm's "cache_prompt")."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        *,
        label_words: tuple[str, str] = ("True", "False"),
        logprobs: int = 20,
        concurrency: int = 4,
        timeout: float = 120.0,
        keep_trailing_space: bool = False,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        sort_prompts: bool = True,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not base_urls:
            raise ConfigError("--base-url: at least one server is needed")
        if logprobs < 1 or concurrency < 1 or not timeout > 0:
            raise ConfigError("--logprobs and --concurrency must be >= 1, --timeout > 0")
        self.endpoints = [_Endpoint(normalize_base_url(u)) for u in base_urls]
        self.label_words = label_words
        self.logprobs = logprobs
        self.concurrency = concurrency
        self.keep_trailing_space = keep_trailing_space
        self.retry = retry or RetryPolicy.from_env()
        self.sort_prompts = sort_prompts
        self.extra_body = dict(extra_body or {})
        self.warnings: list[str] = []
        # Prompt tokens the server took from its prefix cache (usage.prompt_tokens_details
        # .cached_tokens, as vLLM and icm's server report it).
        self._api_key = api_key if api_key is not None else api_key_from_environment()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        loopback = all(
            urlsplit(e.base).hostname in ("127.0.0.1", "localhost", "::1") for e in self.endpoints
        )
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
            ),
            trust_env=not loopback,  # a proxy from the environment must not catch localhost
        )
        self._lock = threading.Lock()  # endpoints' in_flight, the round robin, stats
        self._next_endpoint = 0
        self._stop = threading.Event()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._warned_short_topk = False
        self._seen_logprobs = False  # any answer with logprobs yet (see _score_one)
        try:
            card = self._model_card()
            self.model = self._resolve_model_name(model, card)
            self.model_id = self._identity(card)
        except BaseException:
            self._client.close()
            raise

    def warn(self, message: str) -> None:
        """Say it once on stderr now, and keep it in `warnings` for the run's log."""
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"icm: warning: {message}", file=sys.stderr, flush=True)

    # -- identity ------------------------------------------------------------------------

    def _model_card(self) -> dict[str, Any] | None:
        """The first endpoint's GET /v1/models entry, or None if it has no such endpoint."""
        endpoint = self.endpoints[0]
        body = self._request_with_retries(endpoint, "GET", endpoint.models, None, fixed=True)
        if body is None:
            return None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            return None
        return data[0]

    def _resolve_model_name(self, model: str, card: dict[str, Any] | None) -> str:
        from icm.backends.default_model import instruct_markers

        if model == "embedded":
            if card is None or not isinstance(card.get("id"), str):
                raise BackendError(
                    f"{self.endpoints[0].models}: no model list; give the model name with --model"
                )
            model = card["id"]
        icm_info = card.get("icm") if card else None
        if isinstance(icm_info, dict) and icm_info.get("instruction_tuned"):
            why = "; ".join(icm_info.get("instruction_tuned_because") or [])
            self.warn(
                f"model '{model}' looks instruction-tuned ({why}); ICM is meant for a BASE model"
            )
        elif instruct_markers(model):
            self.warn(
                f"model '{model}' looks instruction-tuned (its name says "
                f"'{instruct_markers(model)[0]}'); ICM is meant for a BASE model"
            )
        return model

    def _identity(self, card: dict[str, Any] | None) -> str:
        """Model name, file fingerprint (from icm's own server) and the scoring settings:
        the same string for the same scores, whichever endpoint answered."""
        fingerprint = None
        if card and isinstance(card.get("icm"), dict):
            fingerprint = card["icm"].get("fingerprint")
        name = self.model + (f"@{fingerprint}" if fingerprint else "")
        space = "kept" if self.keep_trailing_space else "stripped"
        return f"{name} (top-{self.logprobs} logprobs, trailing space {space})"

    # -- scoring -------------------------------------------------------------------------

    def prepare(self, prompt: str) -> str:
        """The text sent for a prompt. With SentencePiece vocabularies (Gemma, Llama 2) a
        trailing space becomes a token of its own, after which the model predicts digits
        and markup rather than ' True'/' False'; dropping it lets the label tokens carry
        their leading space as in training text (docs/backends.md)."""
        return prompt if self.keep_trailing_space else prompt.rstrip(" ")

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        if self._stop.is_set():
            raise BackendError(f"{self.endpoints[0].base}: the scorer is closed")
        started = time.monotonic()
        texts = [self.prepare(p) for p in prompts]
        # One job per distinct text, queued in sorted order (shared prefixes adjacent).
        unique = sorted(set(texts)) if self.sort_prompts else list(dict.fromkeys(texts))
        jobs = {text: _Job(text) for text in unique}
        self._start_workers()
        for text in unique:
            self._jobs.put(jobs[text])
        try:
            for text in unique:
                job = jobs[text]
                job.done.wait()
                if job.error is not None:
                    raise job.error
        except BaseException:
            for job in jobs.values():
                job.cancelled = True
            raise
        finally:
            with self._lock:
                self.stats.seconds += time.monotonic() - started
        return [jobs[t].result for t in texts]  # type: ignore[misc]

    def _start_workers(self) -> None:
        # Daemon threads: a request stuck in a dead server never keeps icm from exiting.
        while len(self._workers) < self.concurrency:
            worker = threading.Thread(target=self._work, name="icm-completions", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.cancelled and not self._stop.is_set():
                try:
                    job.result = self._score_one(job.prompt)
                except BaseException as e:
                    job.error = e
            elif job.error is None and job.result is None:
                job.error = BackendError(f"{self.endpoints[0].base}: cancelled")
            job.done.set()

    def _score_one(self, prompt: str) -> tuple[float, float]:
        payload = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": self.logprobs,
            **self.extra_body,
        }
        endpoint = self._pick_endpoint()
        for attempt in range(self.retry.retries + 1):
            body = self._request_with_retries(endpoint, "POST", endpoint.completions, payload)
            top = top_logprobs_of(body)
            # A server that has never sent logprobs is misconfigured: say so at once. One
            # that has, and now sends an answer without them, glitched: ask again.
            if top or not self._seen_logprobs or attempt == self.retry.retries:
                break
            with self._lock:
                self.stats.retries += 1
            if self._stop.wait(self.retry.delay(attempt)):
                raise BackendError(f"{endpoint.completions}: the scorer was closed")
        if not top:
            with self._lock:
                self.stats.failures += 1
            raise BackendError(
                f"{endpoint.completions}: the response has no logprobs; {NO_LOGPROBS_HINT}"
            )
        self._seen_logprobs = True
        if len(top) < self.logprobs - 2 and not self._warned_short_topk:
            # (A couple fewer is normal: tokens with the same text share one entry.)
            self._warned_short_topk = True
            self.warn(
                f"{endpoint.completions} returned {len(top)} of the {self.logprobs} "
                "logprobs asked for; label probabilities outside them count as 0"
            )
        usage = body.get("usage") if isinstance(body, dict) else None
        with self._lock:
            self.stats.requests += 1
            self.stats.prompt_chars += len(prompt)
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                self.stats.prompt_tokens += usage["prompt_tokens"]
                details = usage.get("prompt_tokens_details")
                if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
                    self.stats.cached_prompt_tokens += details["cached_tokens"]
        return label_logprobs(top, self.label_words)

    def _pick_endpoint(self, avoid: _Endpoint | None = None) -> _Endpoint:
        with self._lock:
            candidates = [e for e in self.endpoints if e is not avoid] or self.endpoints
            n = len(self.endpoints)
            order = [self.endpoints[(self._next_endpoint + i) % n] for i in range(n)]
            best = min((e for e in order if e in candidates), key=lambda e: e.in_flight)
            self._next_endpoint = (self.endpoints.index(best) + 1) % n
            return best

    def _request_with_retries(
        self,
        endpoint: _Endpoint,
        method: str,
        url: str,
        payload: dict[str, Any] | None,
        *,
        fixed: bool = False,
    ) -> Any:
        """The JSON body of a successful answer, retrying transient failures. A GET
        answered 404 gives None (the server has no such endpoint). fixed: retry on the
        same endpoint (for GET /v1/models); otherwise a retry may move to another one."""
        last_error = ""
        attempts = self.retry.retries + 1
        for attempt in range(attempts):
            if self._stop.is_set():
                raise BackendError(f"{url}: the scorer was closed")
            with self._lock:
                endpoint.in_flight += 1
            retry_after = None
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TimeoutException as e:
                last_error = f"timed out ({type(e).__name__})"
            except httpx.RequestError as e:  # connection refused, reset, bad answer...
                last_error = f"cannot connect ({self._redact(str(e)) or type(e).__name__})"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:  # truncated or garbled: transient, like a reset
                        last_error = "the answer is not JSON"
                elif method == "GET" and response.status_code == 404:
                    return None
                else:
                    last_error = f"HTTP {response.status_code}: {self._error_message(response)}"
                    if response.status_code not in RETRYABLE_STATUS:
                        with self._lock:
                            self.stats.failures += 1
                        raise BackendError(f"{url}: {last_error}")
                    retry_after = _retry_after_seconds(response)
            finally:
                with self._lock:
                    endpoint.in_flight -= 1
            if attempt + 1 < attempts:
                with self._lock:
                    self.stats.retries += 1
                if self._stop.wait(self.retry.delay(attempt, retry_after)):
                    raise BackendError(f"{url}: the scorer was closed")
                if not fixed and len(self.endpoints) > 1:
                    endpoint = self._pick_endpoint(avoid=endpoint)
                    url = endpoint.completions if payload is not None else endpoint.models
        with self._lock:
            self.stats.failures += 1
        raise BackendError(f"{url}: {last_error} (gave up after {attempts} attempts)")

    def _error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            message = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(message, dict):
                message = message.get("message", message)
            text = str(message)
        except ValueError:
            text = response.text
        text = " ".join(text.split())
        return self._redact(text[:300] + ("..." if len(text) > 300 else ""))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[API key]") if self._api_key else text

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()  # wakes retries that wait; workers finish their request and exit
        for _ in self._workers:
            self._jobs.put(None)
        self._client.close()


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: use the backoff
