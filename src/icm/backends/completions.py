"""A LabelScorer over OpenAI-compatible /v1/completions servers (vLLM, llama.cpp, icm serve).

Each prompt is one request: max_tokens 1, temperature 0, logprobs k. The label log
probabilities come from the top-k logprobs of the first generated position with the
original code's rule (base.label_logprobs). Prompts of one call are sent in sorted order,
so consecutive requests share the longest prefixes and a server's prefix cache hits; the
results come back in the caller's order.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import queue
import random
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore
import httpx

from icm.backends.base import LabelScorer, WarningSource, label_logprobs
from icm.errors import BackendError, ConfigError

API_KEY_VARIABLES = ("ICM_API_KEY", "OPENAI_API_KEY")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
NO_LOGPROBS_HINT = (
    "the server must return top logprobs on /v1/completions (vLLM and llama.cpp do when "
    "asked); chat-only APIs cannot score (docs/backends.md)"
)
# vLLM refuses a request for more logprobs than its --max-logprobs (default 20) with a 400
# "Requested sample logprobs of N, which is greater than max allowed: M".
TOO_MANY_LOGPROBS_HINT = (
    "restart the server with --max-logprobs >= {k} (vLLM), or ask for fewer with icm's --logprobs"
)
# What stands for the credentials of a URL wherever icm writes or prints one.
REDACTED = "REDACTED"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|secret|password|auth)=)[^&#\s]+"
)
# An Authorization value a server echoes back ("invalid key Basic dXNl...", "Bearer sk-...",
# "Authorization: xyz"): the scheme is kept, the credential is not.
_AUTH_SCHEME_VALUE = re.compile(r"\b(Basic|Bearer)(\s+)[A-Za-z0-9+/._~-]+=*")
_AUTH_HEADER_VALUE = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!(?:basic|bearer)\s)[^\s\"',;}]+"
)
# How long an endpoint that refused a connection is left alone while others are up.
ENDPOINT_DOWN_SECONDS = 30.0
_TOKEN_ID_KEY = re.compile(r"token_id:\d+")


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


def redact_secrets(text: str, secrets: Sequence[str], api_key: str | None) -> str:
    """redact_credentials, and this scorer's own secrets wherever a server echoes them
    without a scheme or URL around them: a URL's user:password (and its Basic token)
    and the API key."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = redact_credentials(text)
    return text.replace(api_key, "[API key]") if api_key else text


def redact_credentials(text: str) -> str:
    """`text` with the user:password of every URL in it, and secret-looking query values
    (api_key=, token=...), replaced by REDACTED: for everything icm writes or prints."""
    text = _URL_USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    text = _AUTH_SCHEME_VALUE.sub(rf"\g<1>\g<2>{REDACTED}", text)
    text = _AUTH_HEADER_VALUE.sub(rf"\g<1>{REDACTED}", text)
    return _URL_SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)


def url_secrets(url: str) -> list[str]:
    """The forms in which a URL's user:password can come back in a server's answer: the
    password, user:password (as given and percent-decoded) and its Basic token."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return []
    user, password = parts.username or "", parts.password or ""
    plain = f"{unquote(user)}:{unquote(password)}"
    token = base64.b64encode(plain.encode()).decode()
    found = {token, f"{user}:{password}", plain, password, unquote(password)}
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def without_userinfo(url: str) -> str:
    """`url` without its user:password@."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


def choose_authorization(
    base_urls: Sequence[str], api_key: str | None, flag: str, warn: Callable[[str], None]
) -> list[str]:
    """One Authorization header carries one credential: with an API key (ICM_API_KEY,
    OPENAI_API_KEY, .env) and a user:password in a URL, the key is sent (as a bearer
    token, what vLLM's and OpenAI's --api-key check) and the URL's user:password is not;
    say so. Without a key, the URL's user:password is sent (HTTP Basic). Returns the URLs
    to send requests to."""
    if not api_key or not any(url_secrets(u) for u in base_urls):
        return list(base_urls)
    warn(
        f"{flag}: both an API key (ICM_API_KEY / OPENAI_API_KEY / .env) and a user:password "
        "in the URL; the API key is sent as the Authorization header and the URL's "
        "user:password is not (unset the key to send the user:password)"
    )
    return [without_userinfo(u) for u in base_urls]


def normalize_base_url(url: str, flag: str = "--base-url") -> str:
    """'http://host:8000', 'http://host:8000/' and 'http://host:8000/v1' all give
    'http://host:8000/v1'."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{flag}: expected http(s)://host[:port][/v1], got '{redact_credentials(url)}'"
        )
    if parts.username == REDACTED or REDACTED in (parts.query or ""):
        # config.json keeps URLs without their credentials; a resumed run needs them again.
        raise ConfigError(
            f"{flag}: '{url}' has its credentials removed (as config.json stores it); give "
            f"{flag} again with them"
        )
    return url if url.endswith("/v1") else url + "/v1"


class MalformedAnswer(ValueError):
    """A completions answer whose logprobs cannot be trusted; the message names the field."""


def _checked_logprob(value: Any, where: str) -> float:
    """A top-k logprob as a float, or MalformedAnswer: a string, a non-finite number or a
    positive one would give a silently wrong score."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedAnswer(f"field '{where}': expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise MalformedAnswer(f"field '{where}': the logprob is {value}, not a finite number")
    if value > 1e-6:  # (rounding may give a hair above 0 for a certain token)
        raise MalformedAnswer(f"field '{where}': the logprob {value} is > 0 (a probability > 1)")
    return min(value, 0.0)


def _choice_at_index_0(choices: list[Any]) -> Any:
    """The choice of the (single) prompt: the one whose `index` is 0, wherever it sits in
    the list; a lone choice without an index counts as index 0."""
    with_index = [c for c in choices if isinstance(c, dict) and "index" in c]
    if not with_index:
        if len(choices) == 1:
            return choices[0]
        raise MalformedAnswer(f"field 'choices': {len(choices)} choices and none has an 'index'")
    matching = [c for c in with_index if c["index"] == 0 and not isinstance(c["index"], bool)]
    if len(matching) != 1:
        indexes = [c["index"] for c in with_index]
        raise MalformedAnswer(
            f"field 'choices[].index': expected exactly one choice with index 0, got {indexes}"
        )
    return matching[0]


def top_logprobs_of(response: Any) -> Mapping[str, float] | None:
    """The next-token top logprobs in a completions response, as {token text: logprob}.

    Understands OpenAI/vLLM/llama-cpp-python (the choice with index 0, its
    logprobs.top_logprobs[0] as a dict), lists of {token, logprob} entries there, llama.cpp
    server's chat-style logprobs.content[0].top_logprobs, and its native
    completion_probabilities[0].top_logprobs. None when the response has none;
    MalformedAnswer (naming the field) when they are there but unusable: a string, a
    non-finite or a positive logprob, or vLLM's `token_id:N` keys."""
    if not isinstance(response, dict):
        return None
    first: Any = None
    where = ""
    choices = response.get("choices")
    if isinstance(choices, list) and choices:
        choice = _choice_at_index_0(choices)
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        if isinstance(logprobs, dict):
            if isinstance(logprobs.get("top_logprobs"), list) and logprobs["top_logprobs"]:
                first = logprobs["top_logprobs"][0]
                where = "choices[index 0].logprobs.top_logprobs[0]"
            elif isinstance(logprobs.get("content"), list) and logprobs["content"]:
                entry = logprobs["content"][0]
                first = entry.get("top_logprobs") if isinstance(entry, dict) else None
                where = "choices[index 0].logprobs.content[0].top_logprobs"
    if first is None and isinstance(response.get("completion_probabilities"), list):
        probs = response["completion_probabilities"]
        if probs and isinstance(probs[0], dict):
            first = probs[0].get("top_logprobs") or probs[0].get("probs")
            where = "completion_probabilities[0].top_logprobs"
    if isinstance(first, dict):
        if first and all(_TOKEN_ID_KEY.fullmatch(str(k)) for k in first):
            raise MalformedAnswer(
                f"field '{where}': the tokens are ids ('{next(iter(first))}'), not text, so "
                "no label word can be found; restart vLLM without --return-tokens-as-token-ids"
            )
        return {str(k): _checked_logprob(v, f"{where}[{k!r}]") for k, v in first.items()}
    if isinstance(first, list):
        out: dict[str, float] = {}
        for i, entry in enumerate(first):
            if not isinstance(entry, dict):
                continue
            token = entry.get("token", entry.get("tok_str"))
            if "logprob" in entry:
                value = _checked_logprob(entry["logprob"], f"{where}[{i}].logprob")
            elif "prob" in entry:
                prob = entry["prob"]
                if isinstance(prob, bool) or not isinstance(prob, (int, float)):
                    raise MalformedAnswer(f"field '{where}[{i}].prob': not a number: {prob!r}")
                if not 0 <= prob <= 1 + 1e-6:
                    raise MalformedAnswer(f"field '{where}[{i}].prob': {prob} is not in [0, 1]")
                if prob == 0:
                    continue
                value = min(math.log(prob), 0.0)
            else:
                continue
            if isinstance(token, str):
                if _TOKEN_ID_KEY.fullmatch(token):
                    raise MalformedAnswer(
                        f"field '{where}[{i}].token': '{token}' is a token id, not text; "
                        "restart vLLM without --return-tokens-as-token-ids"
                    )
                # Same text twice (byte tokens): the probabilities add.
                out[token] = (
                    math.log(math.exp(out[token]) + math.exp(value)) if token in out else value
                )
        return out
    return None


class _Job:
    """One prompt to score; a worker thread fills result or error and sets done."""

    __slots__ = ("cancelled", "done", "error", "prompt", "result")

    def __init__(self, prompt: str, done: queue.SimpleQueue[_Job]) -> None:
        self.prompt = prompt
        self.done = done  # the job goes here once finished
        self.result: tuple[float, float] | None = None
        self.error: BaseException | None = None
        self.cancelled = False


# ---------------------------------------------------------------------------------------
# A deadline on a whole request
# ---------------------------------------------------------------------------------------

# httpx's timeouts bound each connect, read and write, not a request: a server that sends
# a byte every few seconds would hold a request forever. The deadline of the request a
# thread is making lives here; every socket operation waits at most until it.
_request_deadline = threading.local()


def _time_left(timeout: float | None, timeout_type: type[Exception]) -> float | None:
    deadline: float | None = getattr(_request_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_type("the request ran past its total --timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._backend.connect_tcp(host, port, left, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bound_whole_requests(client: httpx.Client) -> None:
    """Route every socket operation of `client` (its direct and proxy transports) through
    _DeadlineBackend. httpx has no public hook for this; its transports keep their
    httpcore pool in `_pool`, and the pool its network backend in `_network_backend`."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            raise RuntimeError("httpx changed: cannot bound the total time of a request")
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------
# A lean HTTP client for plain http:// servers
# ---------------------------------------------------------------------------------------

# httpx costs 1.5-3.7 ms of CPU per request (measured against a loopback server at
# --concurrency 16-64), enough to make icm, not the server, the limit of exact mode. For
# http:// URLs that no proxy applies to, requests go through the few lines of HTTP/1.1
# below instead (one keep-alive connection per worker thread and server, one send and
# usually one receive a request: docs/performance.md); https and proxies stay with httpx.
# Both honour the whole-request deadline above and raise httpx's exceptions, so
# everything after them is shared.


class _LeanConnection:
    """One keep-alive HTTP/1.1 connection: answers with Content-Length, chunked, or up to
    the close."""

    def __init__(self, host: str, port: int, connect_timeout: float, timeout: float) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._sock_timeout: float | None = None
        self._buffer = bytearray()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buffer.clear()

    def _connect(self) -> None:
        left = _time_left(self.connect_timeout, TimeoutError)
        sock = socket.create_connection((self.host, self.port), left)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self._sock_timeout = sock, left

    def _wait_at_most(self) -> socket.socket:
        """The socket, its timeout tightened towards the request's deadline (re-set only
        when the time left has shrunk by a tenth: a system call per request saved)."""
        assert self.sock is not None
        left = _time_left(self.timeout, TimeoutError)
        if left is not None and (self._sock_timeout is None or left < 0.9 * self._sock_timeout):
            self.sock.settimeout(left)
            self._sock_timeout = left
        return self.sock

    def _fill(self) -> None:
        data = self._wait_at_most().recv(262144)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self._buffer += data

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill()
        return self._take(end + 2)[:-2]

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request; its status, headers (names lower case) and body."""
        if self.sock is None:
            self._connect()
        self._wait_at_most().sendall(request)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self._take(end + 4).decode("latin-1").split("\r\n")
        version, _, rest = head[0].partition(" ")
        if not version.startswith("HTTP/"):
            raise http.client.BadStatusLine(head[0])
        status = int(rest.split(" ", 1)[0])
        headers: dict[str, str] = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self._line().split(b";", 1)[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, up to the blank line
                pass
            body = b"".join(parts)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:  # up to the close
            try:
                while True:
                    self._fill()
            except ConnectionResetError:
                pass
            body, keep = bytes(self._buffer), False
            self._buffer.clear()
        if not keep:
            self.close()
        return status, headers, body


class _LeanResponse:
    """What icm reads of an answer: status, headers, body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _LeanHttp:
    """Requests over http.client, one keep-alive connection per thread and server."""

    def __init__(self, headers: Mapping[str, str], connect_timeout: float, timeout: float) -> None:
        fields = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_LeanConnection] = []

    @staticmethod
    def serves(url: str, trust_env: bool) -> bool:
        """Whether `url` goes through this client: http://, with no proxy for it."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.username or parts.password:
            return False
        if not trust_env:
            return True
        proxies = urllib.request.getproxies()
        host = parts.hostname or ""
        return not (proxies.get("http") or proxies.get("all")) or bool(
            urllib.request.proxy_bypass(host)
        )

    def _connection(self, host: str, port: int) -> _LeanConnection:
        connections: dict[tuple[str, int], _LeanConnection] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        conn = connections.get((host, port))
        if conn is None:
            conn = _LeanConnection(host, port, self._connect_timeout, self._timeout)
            connections[(host, port)] = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def request(self, method: str, url: str, json: Any = None) -> _LeanResponse:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        conn = self._connection(host, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = b"" if json is None else _dumps(json)
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{self._head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body
        for attempt in range(2):
            reused = conn.sock is not None
            try:
                status, headers, content = conn.exchange(request)
            except TimeoutError as e:
                conn.close()
                raise httpx.ReadTimeout(str(e) or "timed out") from None
            except ConnectionRefusedError as e:
                conn.close()
                raise httpx.ConnectError(str(e)) from None
            except (OSError, ValueError, http.client.HTTPException) as e:
                conn.close()
                # A kept-alive connection the server had closed meanwhile: once more anew.
                if (
                    attempt == 0
                    and reused
                    and isinstance(e, (BrokenPipeError, ConnectionResetError))
                ):
                    continue
                if isinstance(e, OSError) and not reused:
                    raise httpx.ConnectError(str(e) or type(e).__name__) from None
                raise httpx.ReadError(str(e) or type(e).__name__) from None
            return _LeanResponse(status, headers, content)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class _Endpoint:
    def __init__(self, base: str) -> None:
        self.set_base(base)
        self.in_flight = 0
        # Until when the endpoint counts as down (it refused a connection): requests go to
        # the others meanwhile.
        self.down_until = 0.0
        self.last_error = ""

    def set_base(self, base: str) -> None:
        self.base = base
        self.completions = base + "/completions"
        self.models = base + "/models"
        # What messages show: the URL without its user:password.
        self.shown = redact_credentials(base)


def _url_for(endpoint: _Endpoint, payload: dict[str, Any] | None) -> str:
    """Where a request goes on `endpoint`: completions with a payload, else the models."""
    return endpoint.completions if payload is not None else endpoint.models


@dataclass(frozen=True)
class _Attempt:
    """One request's outcome: the answer (`body`, None for a GET answered 404), or the
    transient failure a retry may mend."""

    answered: bool = False
    body: Any = None
    error: str = ""
    refused: bool = False  # the connection was refused: the server may be down
    retry_after: float | None = None  # what the server asked for (Retry-After), seconds


class CompletionsScorer(LabelScorer, WarningSource):
    """Scores prompts on one or more OpenAI-compatible completions endpoints.

    model: the name sent in each request; "embedded" means "ask GET /v1/models and use the
    first id". Requests are spread over the endpoints, to the one with the fewest requests
    in flight (round robin among equals); a retried request goes to another endpoint when
    there is one; an endpoint that refuses connections is left alone for a while, and only
    when every endpoint is down does a request fail. timeout bounds a whole request
    (connect and every read). sort_prompts=False sends prompts in the caller's order (for
    benchmarks); extra_body adds fields to every request (e.g. vLLM's "top_k", icm's
    "cache_prompt"). revive: for a server icm started itself, called with an endpoint's URL
    when it refuses connections; it restarts the server if it died and returns its URL
    (or raises BackendError)."""

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
        revive: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__()
        if not base_urls:
            raise ConfigError("--base-url: at least one server is needed")
        if logprobs < 1 or concurrency < 1 or not timeout > 0:
            raise ConfigError("--logprobs and --concurrency must be >= 1, --timeout > 0")
        self._api_key = api_key if api_key is not None else api_key_from_environment()
        urls = [normalize_base_url(u) for u in base_urls]
        self._secrets = [s for u in urls for s in url_secrets(u)]
        self._start_warnings()
        # The context length GET /v1/models reports (vLLM, icm's server), else None.
        self.max_model_len: int | None = None
        urls = choose_authorization(urls, self._api_key, "--base-url", self.warn)
        self.endpoints = [_Endpoint(u) for u in urls]
        self.label_words = label_words
        self.logprobs = logprobs
        self.concurrency = concurrency
        self.keep_trailing_space = keep_trailing_space
        self.retry = retry or RetryPolicy.from_env()
        self.sort_prompts = sort_prompts
        self.extra_body = dict(extra_body or {})
        self.timeout = timeout
        self._revive = revive
        self._revive_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        loopback = all(
            urlsplit(e.base).hostname in ("127.0.0.1", "localhost", "::1") for e in self.endpoints
        )
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=timeout),
            limits=httpx.Limits(
                max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
            ),
            trust_env=not loopback,  # a proxy from the environment must not catch localhost
        )
        _bound_whole_requests(self._client)
        trust_env = not loopback
        self._lean = (
            _LeanHttp(headers, min(timeout, 10.0), timeout)
            if all(_LeanHttp.serves(e.base, trust_env) for e in self.endpoints)
            else None
        )
        self._lock = threading.Lock()  # endpoints' in_flight, the round robin, stats
        self._next_endpoint = 0
        self._stop = threading.Event()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._warned_short_topk = False
        self._seen_logprobs = False  # any answer with logprobs yet (see _score_one)
        try:
            card = self._model_card(model)
            self.model = self._resolve_model_name(model, card)
            self.model_id = self._identity(card)
            length = card.get("max_model_len") if card else None
            # icm's own server checks each prompt against its context itself, in one line.
            own_server = card is not None and isinstance(card.get("icm"), dict)
            if isinstance(length, int) and not isinstance(length, bool) and length > 0:
                self.max_model_len = None if own_server else length
        except BaseException:
            self._client.close()
            raise

    def check_prompt_lengths(self, prompts: Sequence[str]) -> None:
        """Refuse, before a run sends them, prompts longer than the server's context
        (`max_model_len` from GET /v1/models): vLLM answers such a prompt with a 400 that
        stops the run wherever it comes, hours in. Tokens are counted by vLLM's
        POST /tokenize; a server without it (icm's own checks each prompt itself) gets a
        warning that nothing was checked."""
        if self.max_model_len is None or not prompts:
            return
        endpoint = next((e for e in self.endpoints if not self._is_down(e)), self.endpoints[0])
        url = endpoint.base.removesuffix("/v1") + "/tokenize"
        counts = []
        for prompt in prompts:
            try:
                response = self._client.post(
                    url, json={"model": self.model, "prompt": self.prepare(prompt)}
                )
                count = response.json().get("count") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                count = None
            if not isinstance(count, int):
                self.warn(
                    f"{endpoint.shown}: cannot count prompt tokens (no POST /tokenize): "
                    f"prompts were not checked against its max_model_len {self.max_model_len}"
                )
                return
            counts.append(count)
        longest = max(counts)
        if longest + 1 > self.max_model_len:  # the prompt and the one token generated
            raise ConfigError(
                f"{endpoint.shown}: the longest prompt this run will build is {longest} "
                f"tokens (+1 generated), more than the server's max_model_len "
                f"{self.max_model_len}; the run would stop there. Restart the server with "
                f"--max-model-len {longest + 1} or more (vLLM), or make prompts shorter "
                "(a smaller --batch_size, or --mp sparse --context-k K)"
            )

    # -- identity ------------------------------------------------------------------------

    def _model_card(self, model: str) -> dict[str, Any] | None:
        """The GET /v1/models entry of `model` (the first entry for "embedded") from the
        first endpoint that answers, or None if the server has no such endpoint. Fields
        icm reads are checked: a malformed one is a BackendError naming it."""
        for endpoint in self.endpoints:
            if endpoint is not self.endpoints[-1] and self._is_down(endpoint):
                continue
            try:
                body, _ = self._request_with_retries(
                    endpoint, "GET", endpoint.models, None, fixed=True
                )
            except _Unreachable:
                if endpoint is self.endpoints[-1]:
                    raise
                continue  # another endpoint may answer
            return None if body is None else _checked_model_card(body, model, endpoint.shown)
        return None  # (not reached: the last endpoint answers or raises)

    def _resolve_model_name(self, model: str, card: dict[str, Any] | None) -> str:
        from icm.backends.default_model import instruct_markers

        if model == "embedded":
            if card is None or not isinstance(card.get("id"), str):
                raise BackendError(
                    f"{self.endpoints[0].shown}/models: no model list; give the model name "
                    "with --model"
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
            raise BackendError(f"{self.endpoints[0].shown}: the scorer is closed")
        started = time.monotonic()
        texts = [self.prepare(p) for p in prompts]
        # One job per distinct text, queued in sorted order (shared prefixes adjacent).
        unique = sorted(set(texts)) if self.sort_prompts else list(dict.fromkeys(texts))
        finished: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        jobs = {text: _Job(text, finished) for text in unique}
        self._start_workers()
        for text in unique:
            self._jobs.put(jobs[text])
        try:
            # In the order they finish: a fatal error ends the call at once, not after
            # the retries of prompts queued before it.
            for _ in unique:
                job = finished.get()
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
                job.error = BackendError(f"{self.endpoints[0].shown}: cancelled")
            job.done.put(job)

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
            body, endpoint = self._request_with_retries(
                endpoint, "POST", endpoint.completions, payload
            )
            try:
                top = top_logprobs_of(body)
            except MalformedAnswer as e:  # a wrong score is worse than none: stop here
                with self._lock:
                    self.stats.failures += 1
                raise BackendError(f"{endpoint.shown}/completions: {e}") from None
            # A server that has never sent logprobs is misconfigured: say so at once. One
            # that has, and now sends an answer without them, glitched: ask again.
            if top or not self._seen_logprobs or attempt == self.retry.retries:
                break
            if self._stop.wait(self.retry.delay(attempt)):
                raise BackendError(f"{endpoint.shown}/completions: the scorer was closed")
            with self._lock:
                self.stats.retries += 1
        if not top:
            with self._lock:
                self.stats.failures += 1
            raise BackendError(
                f"{endpoint.shown}/completions: the response has no logprobs; {NO_LOGPROBS_HINT}"
            )
        self._seen_logprobs = True
        if len(top) < self.logprobs - 2 and not self._warned_short_topk:
            # (A couple fewer is normal: tokens with the same text share one entry.)
            self._warned_short_topk = True
            self.warn(
                f"{endpoint.shown}/completions returned {len(top)} of the {self.logprobs} "
                "logprobs asked for; label probabilities outside them count as 0"
            )
        usage = body.get("usage") if isinstance(body, dict) else None
        details_missing = False
        with self._lock:
            self.stats.requests += 1
            self.stats.prompt_chars += len(prompt)
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                self.stats.prompt_tokens += usage["prompt_tokens"]
                # Prompt tokens the server took from its prefix cache, as vLLM (with
                # --enable-prompt-tokens-details) and icm's server report them. Without
                # the details a 0 would claim a cold cache: count such answers instead.
                details = usage.get("prompt_tokens_details")
                if isinstance(details, dict):
                    cached = details.get("cached_tokens")
                    if isinstance(cached, int) and not isinstance(cached, bool):
                        self.stats.cached_prompt_tokens += cached
                else:
                    self.stats.answers_without_cached_token_details += 1
                    details_missing = True
        if details_missing:
            self.warn(
                f"{endpoint.shown}/completions reports no usage.prompt_tokens_details, so "
                "cached_prompt_tokens cannot say how much its prefix cache served "
                "(answers_without_cached_token_details); for vLLM add "
                "--enable-prompt-tokens-details"
            )
        return label_logprobs(top, self.label_words)

    def _is_down(self, endpoint: _Endpoint) -> bool:
        return endpoint.down_until > time.monotonic()

    def _pick_endpoint(self, avoid: _Endpoint | None = None) -> _Endpoint:
        """The endpoint with the fewest requests in flight (round robin among equals),
        among those not down (all of them when all are down), other than `avoid` when
        there is another."""
        if len(self.endpoints) == 1:
            return self.endpoints[0]
        with self._lock:
            up = [e for e in self.endpoints if not self._is_down(e)] or self.endpoints
            candidates = [e for e in up if e is not avoid] or up
            n = len(self.endpoints)
            order = [self.endpoints[(self._next_endpoint + i) % n] for i in range(n)]
            best = min((e for e in order if e in candidates), key=lambda e: e.in_flight)
            self._next_endpoint = (self.endpoints.index(best) + 1) % n
            return best

    def _mark_down(self, endpoint: _Endpoint, error: str) -> bool:
        """Note that `endpoint` refused a connection; True if another endpoint is up."""
        with self._lock:
            endpoint.down_until = time.monotonic() + ENDPOINT_DOWN_SECONDS
            endpoint.last_error = error
            others_up = any(not self._is_down(e) for e in self.endpoints)
        if others_up:  # said (and logged by the run), not only routed around
            self.warn(
                f"{endpoint.shown} refuses connections ({error}); requests go to the other "
                f"servers, and it is tried again after {ENDPOINT_DOWN_SECONDS:g} s"
            )
        return others_up

    def _revived(self, endpoint: _Endpoint) -> bool:
        """For a server icm started: restart it if it died (once; a second death is a
        BackendError naming it). True if the endpoint is worth asking again now."""
        if self._revive is None:
            return False
        with self._revive_lock:  # workers that all saw the refusal restart it once
            base = self._revive(endpoint.base)
            with self._lock:
                if base != endpoint.base:
                    endpoint.set_base(normalize_base_url(base))
                endpoint.down_until = 0.0
        return True

    def _request_with_retries(
        self,
        endpoint: _Endpoint,
        method: str,
        url: str,
        payload: dict[str, Any] | None,
        *,
        fixed: bool = False,
    ) -> tuple[Any, _Endpoint]:
        """The JSON body of a successful answer and the endpoint that gave it, retrying
        transient failures. A GET answered 404 gives None (the server has no such
        endpoint). fixed: retry on the same endpoint (for GET /v1/models); otherwise a
        retry may move to another one.

        A retry is counted when the request is sent again, not when one is planned: a
        request cut off by a fatal error elsewhere (the scorer closing) is no retry."""
        attempts = self.retry.retries + 1
        revived = False
        attempt = 0  # attempts used up; moving away from a refusing endpoint uses none
        resend = False
        while True:
            if self._stop.is_set():
                raise BackendError(f"{redact_credentials(url)}: the scorer was closed")
            if resend:
                with self._lock:
                    self.stats.retries += 1
            resend = True
            tried = self._send_once(endpoint, method, url, payload)
            if tried.answered:
                return tried.body, endpoint
            if tried.refused:
                # Asked at every refusal, not once per request: a request whose one revive
                # found the server alive (restarted by another request) must still see it
                # die again, and name that, rather than give up "cannot connect".
                if self._revived(endpoint):
                    current = _url_for(endpoint, payload)
                    if not revived or current != url:
                        revived = True  # a restarted server: ask it again at once
                        url = current
                        continue
                if self._mark_down(endpoint, tried.error):
                    if fixed:  # the caller asks the next endpoint
                        raise _Unreachable(f"{endpoint.shown}: {tried.error}")
                    # Another server is up: go there now, without waiting or using an attempt.
                    endpoint = self._pick_endpoint(avoid=endpoint)
                    url = _url_for(endpoint, payload)
                    continue
            attempt += 1
            if attempt >= attempts:
                self._give_up(endpoint, url, tried, attempts)
            if self._stop.wait(self.retry.delay(attempt - 1, tried.retry_after)):
                raise BackendError(f"{redact_credentials(url)}: the scorer was closed")
            if not fixed and len(self.endpoints) > 1:
                endpoint = self._pick_endpoint(avoid=endpoint)
                url = _url_for(endpoint, payload)

    def _send_once(
        self, endpoint: _Endpoint, method: str, url: str, payload: dict[str, Any] | None
    ) -> _Attempt:
        """One request to `endpoint`: its answer, or the transient failure a retry may
        mend. An error answer no retry mends raises BackendError."""
        with self._lock:
            endpoint.in_flight += 1
        _request_deadline.at = time.monotonic() + self.timeout
        try:
            client = self._lean or self._client
            response = client.request(method, url, json=payload)
        except httpx.TimeoutException as e:
            return _Attempt(error=f"timed out after {self.timeout:g} s ({type(e).__name__})")
        except httpx.RequestError as e:  # connection refused, reset, bad answer...
            return _Attempt(
                error=f"cannot connect ({self._redact(str(e)) or type(e).__name__})",
                refused=isinstance(e, httpx.ConnectError),
            )
        else:
            return self._read_answer(method, url, response)
        finally:
            _request_deadline.at = None
            with self._lock:
                endpoint.in_flight -= 1

    def _read_answer(
        self, method: str, url: str, response: httpx.Response | _LeanResponse
    ) -> _Attempt:
        if response.status_code == 200:
            try:
                return _Attempt(answered=True, body=response.json())
            except ValueError:  # truncated or garbled: transient, like a reset
                return _Attempt(error="the answer is not JSON")
        if method == "GET" and response.status_code == 404:
            return _Attempt(answered=True, body=None)
        error = f"HTTP {response.status_code}: {self._error_message(response)}"
        if response.status_code not in RETRYABLE_STATUS:
            with self._lock:
                self.stats.failures += 1
            if "requested sample logprobs" in error.lower():
                error += "; " + TOO_MANY_LOGPROBS_HINT.format(k=self.logprobs)
            raise BackendError(f"{redact_credentials(url)}: {error}")
        return _Attempt(error=error, retry_after=_retry_after_seconds(response))

    def _give_up(self, endpoint: _Endpoint, url: str, last: _Attempt, attempts: int) -> NoReturn:
        """Every attempt failed: a refusal by every server is _Unreachable naming each,
        one server's refusal _Unreachable, anything else a BackendError."""
        with self._lock:
            self.stats.failures += 1
            if last.refused:
                endpoint.down_until = time.monotonic() + ENDPOINT_DOWN_SECONDS
                endpoint.last_error = last.error
            down = [e for e in self.endpoints if self._is_down(e)]
        if last.refused and len(self.endpoints) > 1 and len(down) == len(self.endpoints):
            named = "; ".join(f"{e.shown} ({e.last_error})" for e in down)
            raise _Unreachable(
                f"none of the {len(down)} servers answers (gave up after {attempts} "
                f"attempts): {named}"
            )
        error_type = _Unreachable if last.refused else BackendError
        raise error_type(
            f"{redact_credentials(url)}: {last.error} (gave up after {attempts} attempts)"
        )

    def _error_message(self, response: httpx.Response | _LeanResponse) -> str:
        """The message of an error answer: OpenAI's {"error": {"message"}}, vLLM's
        {"object": "error", "message"}, or the text."""
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
        return redact_secrets(text, self._secrets, self._api_key)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()  # wakes retries that wait; workers finish their request and exit
        for _ in self._workers:
            self._jobs.put(None)
        self._client.close()
        if self._lean is not None:
            self._lean.close()


class _Unreachable(BackendError):
    """No server answered a connection (the message names them)."""


def _checked_model_card(body: Any, model: str, where: str) -> dict[str, Any] | None:
    """The /v1/models entry of `model` (the first one for "embedded"), its fields checked."""

    def bad(field: str, problem: str) -> BackendError:
        return BackendError(f"{where}/models: field '{field}': {problem}")

    if not isinstance(body, dict):
        raise bad("(body)", f"expected a JSON object, got {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, list):
        raise bad("data", f"expected a list of models, got {data!r:.80}")
    if not data:
        return None
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise bad(f"data[{i}]", f"expected an object, got {entry!r:.80}")
        if not isinstance(entry.get("id"), str):
            raise bad(f"data[{i}].id", f"expected a model name, got {entry.get('id')!r:.80}")
    card = next((e for e in data if e["id"] == model), data[0])
    i = data.index(card)
    info = card.get("icm")
    if info is None:
        return card
    if not isinstance(info, dict):
        raise bad(f"data[{i}].icm", f"expected an object, got {info!r:.80}")
    for name, kind in (("fingerprint", str), ("instruction_tuned", bool)):
        if name in info and info[name] is not None and not isinstance(info[name], kind):
            raise bad(
                f"data[{i}].icm.{name}", f"expected a {kind.__name__}, got {info[name]!r:.80}"
            )
    because = info.get("instruction_tuned_because")
    if because is not None and not (
        isinstance(because, list) and all(isinstance(b, str) for b in because)
    ):
        raise bad(
            f"data[{i}].icm.instruction_tuned_because",
            f"expected a list of strings, got {because!r:.80}",
        )
    return card


def _retry_after_seconds(response: httpx.Response | _LeanResponse) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: use the backoff
