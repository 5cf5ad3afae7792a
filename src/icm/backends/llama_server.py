"""icm's OpenAI-compatible completions server for scoring, on llama.cpp's low-level API.

    python -m icm.backends.llama_server --model FILE.gguf [--host 127.0.0.1] [--port 8080]

Why not llama-cpp-python's own server or `Llama.create_completion(logprobs=...)`: those need
`logits_all=True`, which keeps n_ctx x n_vocab float logits (4 GB for Gemma 3's 262k-token
vocabulary at n_ctx 4096) and runs the LM head on every prompt token. ICM needs only the
distribution of the next token after the prompt, so this server asks llama.cpp for the logits
of the last position alone, and keeps the KV cache of recent prompts in a few slots (sequence
ids) so that a prompt sharing a prefix with an earlier one is evaluated from where they differ.

A prompt's scores do not depend on what was evaluated before it (bit for bit, on CPU): see
`LlamaEngine` for the three settings that make prefix reuse give exactly the cold numbers.

Endpoints: GET /health, GET /v1/models, POST /v1/completions (max_tokens 0 or 1, greedy).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

READY_PREFIX = "icm llama server ready: "
MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_N_CTX = 8192
DEFAULT_SLOTS = 2
# Where evaluation may restart after a cached prefix. llama.cpp's CPU matmuls are exact per
# row only within one kernel, and which kernel a row takes depends on how many rows its batch
# has: ggml-cpu's repacked quantized matmuls (Q4_K, Q4_0...) take rows in groups of 4 and the
# left-over rows through another kernel, and its tiled K-quant matmul runs on batches of at
# least 8 rows (smaller ones take the plain dot-product kernel). The float sums of the two
# kernels differ in the last bit, which a 4-bit model amplifies to ~0.03 in a label logprob.
# So evaluation restarts on a multiple of EVAL_ALIGN, in the same n_batch chunks as a cold
# evaluation, and never leaves fewer than MIN_TILED_ROWS rows of a chunk to evaluate.
# Measured: prefix reuse then gives the cold numbers exactly (tests/test_embedded_server.py).
EVAL_ALIGN = 4
MIN_TILED_ROWS = 8
DEFAULT_MAX_LOGPROBS = 100
# A prompt goes to the slot sharing its longest prefix if that covers at least this
# fraction of it; otherwise to the least recently used slot, so that an unrelated prompt
# does not wipe a useful prefix. (Simulated on exact-MP steps of ICM: 0.1 keeps ~10% more
# prompt tokens cached than llama-server's 0.5 with 2 slots.)
SLOT_SIMILARITY = 0.1


class EngineError(RuntimeError):
    """llama.cpp could not load or evaluate; the message names the file or the step."""


class RequestError(ValueError):
    """A request the server refuses: answered with this HTTP status and message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# llama.cpp logs through one callback. Keep its warnings and errors, drop the load chatter.
_LOG_WARN = 3
_LOG_CONT = 5
_log_state = {"level": 0}


def _log_to_stderr(level: int, text: bytes, _user: Any) -> None:
    if level != _LOG_CONT:
        _log_state["level"] = level
    if _log_state["level"] >= _LOG_WARN and text:
        sys.stderr.write(text.decode("utf-8", errors="replace"))


_log_callback: Any = None


def quiet_llama_logs() -> None:
    """Route llama.cpp's log through a filter that keeps warnings and errors only."""
    global _log_callback
    import llama_cpp

    if _log_callback is None:
        _log_callback = llama_cpp.llama_log_callback(_log_to_stderr)  # kept alive: C holds it
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def model_metadata(model: Any) -> dict[str, str]:
    """Every GGUF key/value of a loaded llama.cpp model, values as llama.cpp prints them."""
    import llama_cpp

    out: dict[str, str] = {}
    size = 1024
    buf = ctypes.create_string_buffer(size)
    for i in range(llama_cpp.llama_model_meta_count(model)):
        values: list[str] = []
        for read in (
            llama_cpp.llama_model_meta_key_by_index,
            llama_cpp.llama_model_meta_val_str_by_index,
        ):
            n = read(model, i, buf, size)
            if n >= size:  # the return value is the full length: read again, big enough
                size = n + 1
                buf = ctypes.create_string_buffer(size)
                n = read(model, i, buf, size)
            values.append(buf.value.decode("utf-8", errors="replace") if n >= 0 else "")
        out[values[0]] = values[1]
    return out


def quick_fingerprint(path: Path) -> str:
    """A cheap identity of a model file: sha256 of its size, first and last MiB.

    The GGUF header (architecture, tokenizer, tensor types) sits in the first MiB, so two
    files that differ in model or quantization differ here, without hashing gigabytes."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return "gguf-qfp:" + digest.hexdigest()[:16]


def content_fingerprint(path: Path, sha256: str | None = None) -> str:
    """The identity of a model file for the response cache: its whole content's sha256
    (0.3 s for the 253 MB default model), or `sha256` when the caller has just verified it.

    Size, mtime or the first and last MiB are not enough: a file damaged in the middle keeps
    them, gives wrong scores, and those must not be cached under the healthy file's name."""
    if sha256 is None:
        with path.open("rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    return "sha256:" + sha256[:16]


def served_model_id(model_path: Path) -> str:
    """The name the server answers to: the file name without .gguf."""
    name = model_path.name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


@dataclass
class Slot:
    """One KV-cache sequence and the tokens it holds."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    last_used: int = 0


@dataclass
class NextToken:
    """The next-token distribution after one prompt, truncated to the top k."""

    top: list[tuple[int, str, float]]  # (token id, text, logprob), most likely first
    n_prompt: int  # prompt tokens, BOS included
    n_cached: int  # prompt tokens taken from the KV cache instead of evaluated


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LlamaEngine:
    """A llama.cpp model and context that return next-token logprobs, reusing the KV cache.

    Prefix reuse gives the numbers of a cold evaluation exactly, because
    - every slot has its own KV stream (kv_unified off), filled in position order, so the
      attention sums run over the same cells in the same order whatever else was cached;
    - every token is evaluated in the same kind of batch as in a cold evaluation
      (`restart_position`, EVAL_ALIGN);
    - flash attention is off: its CPU kernel's results depend on how the prompt was split
      into batches (and llama-cpp-python's Llama, the reference in the tests, has it off).

    Not thread-safe: the HTTP server holds one lock around every call."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_slots: int = DEFAULT_SLOTS,
    ) -> None:
        import llama_cpp

        self._llama = llama_cpp
        self.model_path = model_path
        self.model: Any = None
        self.ctx: Any = None
        self.batch: Any = None
        if not model_path.is_file():
            raise EngineError(f"{model_path}: no such model file")
        llama_cpp.llama_backend_init()
        quiet_llama_logs()
        self.model = llama_cpp.llama_model_load_from_file(
            str(model_path).encode(), llama_cpp.llama_model_default_params()
        )
        if not self.model:
            raise EngineError(f"{model_path}: llama.cpp could not load this file as a GGUF model")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_slots  # n_ctx per slot: each slot is its own KV stream
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_slots
        params.n_threads = params.n_threads_batch = n_threads or default_threads()
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        # Keep every position of sliding-window layers too: without it llama.cpp drops
        # old positions of SWA layers (Gemma 3) and a cached prefix could not be extended.
        params.swa_full = True
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise EngineError(
                f"{model_path}: llama.cpp could not create a context of {n_ctx} tokens "
                "(out of memory? try a smaller --n-ctx)"
            )
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(self.ctx))  # per slot
        # llama.cpp caps the batch at the context size: a small --n-ctx means smaller chunks
        # (a chunk beyond the cap would abort the process in a GGML_ASSERT).
        self.n_batch = min(n_batch, int(llama_cpp.llama_n_batch(self.ctx)))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.slots = [Slot(seq_id=s) for s in range(n_slots)]
        self.metadata = model_metadata(self.model)
        self._pieces: dict[int, str] = {}
        self._clock = 0
        self.closed = False

    # -- text <-> tokens ------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Tokens of `text` as llama.cpp's server makes them: BOS if the model wants one,
        special tokens parsed."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        for _ in range(2):
            buf = (self._llama.llama_token * capacity)()
            n = self._llama.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, self.add_bos, True
            )
            if n >= 0:
                return list(buf[:n])
            capacity = -n
        raise EngineError(f"llama_tokenize failed for a prompt of {len(data)} bytes")

    def piece(self, token: int) -> str:
        """The text of one token as it appears after other text, e.g. ' True'."""
        text = self._pieces.get(token)
        if text is None:
            size = 64
            buf = ctypes.create_string_buffer(size)
            n = self._llama.llama_token_to_piece(self.vocab, token, buf, size, 0, True)
            if n < 0:
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = self._llama.llama_token_to_piece(self.vocab, token, buf, size, 0, True)
            # A byte-fallback token may hold part of a UTF-8 character: shown as U+FFFD.
            text = buf.raw[: max(n, 0)].decode("utf-8", errors="replace")
            self._pieces[token] = text
        return text

    # -- evaluation -----------------------------------------------------------------------

    def next_token(self, tokens: list[int], top_k: int, *, reuse_cache: bool = True) -> NextToken:
        """Log-softmax of the logits after `tokens`, top `top_k` entries.

        reuse_cache=False evaluates from scratch and keeps nothing (`cache_prompt: false`)."""
        if self.closed:
            raise EngineError("the engine is shut down")
        if not tokens:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the prompt has no tokens")
        if len(tokens) > self.n_ctx:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the prompt is {len(tokens)} tokens, more than this server's context of "
                f"{self.n_ctx} tokens (restart it with a larger --n-ctx)",
            )
        self._clock += 1
        slot = self._pick_slot(tokens) if reuse_cache else self._least_recently_used()
        slot.last_used = self._clock
        shared = common_prefix_len(slot.tokens, tokens) if reuse_cache else 0
        keep = self.restart_position(shared, len(tokens))
        if not self._llama.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1):
            self._llama.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            keep = 0
        del slot.tokens[keep:]
        # llama.cpp runs the last layer's FFN only on the rows whose logits are asked for,
        # and groups those rows by EVAL_ALIGN too. Asking for the last ((n-1) % 4) + 1 rows
        # puts the last token in the same kernel as a full-logits evaluation (llama-cpp-
        # python's logits_all=True), so both give the same numbers; the extra rows cost
        # at most 3 rows of LM head.
        n_outputs = (len(tokens) - 1) % EVAL_ALIGN + 1
        self._decode(slot, tokens[keep:], n_outputs)
        logits_ptr = self._llama.llama_get_logits_ith(self.ctx, -1)
        if not logits_ptr:
            raise EngineError("llama.cpp returned no logits for the last position")
        logits = np.ctypeslib.as_array(logits_ptr, shape=(self.n_vocab,)).astype(np.float64)
        if not reuse_cache:  # a cold evaluation neither uses nor leaves a cached prefix
            self._llama.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            slot.tokens.clear()
            slot.last_used = 0
        return NextToken(self._top_logprobs(logits, top_k), len(tokens), keep)

    def restart_position(self, shared: int, n_tokens: int) -> int:
        """How many of `shared` cached tokens to keep for a prompt of `n_tokens` tokens, so
        that every token left is evaluated by the same kernels as in a cold evaluation.

        At least the last token is evaluated (its logits are the ones we need). Cold, a
        prompt goes in chunks [0, n_batch), [n_batch, 2 n_batch)...; the restart is on a
        multiple of EVAL_ALIGN and leaves at least MIN_TILED_ROWS rows of its chunk, or
        the whole chunk when the chunk is shorter than that."""
        keep = min(shared, n_tokens - 1) // EVAL_ALIGN * EVAL_ALIGN
        chunk_start = keep // self.n_batch * self.n_batch
        chunk_end = min(chunk_start + self.n_batch, n_tokens)
        if chunk_end - keep < MIN_TILED_ROWS:
            keep = max(chunk_start, (chunk_end - MIN_TILED_ROWS) // EVAL_ALIGN * EVAL_ALIGN)
        return keep

    def _top_logprobs(self, logits: np.ndarray, top_k: int) -> list[tuple[int, str, float]]:
        peak = float(logits.max())
        logprobs = logits - (peak + math.log(float(np.exp(logits - peak).sum())))
        k = max(1, min(top_k, self.n_vocab))
        best = np.argpartition(-logprobs, k - 1)[:k]
        best = best[np.lexsort((best, -logprobs[best]))]  # by logprob, ties by token id
        return [(int(t), self.piece(int(t)), float(logprobs[t])) for t in best]

    def _pick_slot(self, tokens: list[int]) -> Slot:
        best = max(self.slots, key=lambda s: (common_prefix_len(s.tokens, tokens), s.last_used))
        if common_prefix_len(best.tokens, tokens) >= SLOT_SIMILARITY * len(tokens):
            return best
        return self._least_recently_used()

    def _least_recently_used(self) -> Slot:
        return min(self.slots, key=lambda s: s.last_used)

    def _decode(self, slot: Slot, new_tokens: list[int], n_outputs: int) -> None:
        batch = self.batch
        start = len(slot.tokens)
        end = start + len(new_tokens)
        pos = start
        while pos < end:
            # Chunks end on multiples of n_batch, as in a cold evaluation.
            chunk_end = min((pos // self.n_batch + 1) * self.n_batch, end)
            chunk = new_tokens[pos - start : chunk_end - start]
            last_chunk = chunk_end == end
            batch.n_tokens = len(chunk)
            for j, token in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = pos + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = slot.seq_id
                batch.logits[j] = 0
            if last_chunk:
                for j in range(max(0, len(chunk) - n_outputs), len(chunk)):
                    batch.logits[j] = 1
            status = self._llama.llama_decode(self.ctx, batch)
            if status != 0:
                # Failed ubatches may stay in the cache: forget the slot entirely.
                self._llama.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
                slot.tokens.clear()
                raise EngineError(f"llama_decode failed with status {status}")
            slot.tokens.extend(chunk)
            pos = chunk_end

    def close(self) -> None:
        self.closed = True
        if self.batch is not None:
            self._llama.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            self._llama.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self._llama.llama_model_free(self.model)
            self.model = None


# ---------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------


def _field_int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"'{name}' must be an integer, got {value!r}")
    return value


@dataclass
class CompletionRequest:
    prompts: list[str]
    max_tokens: int
    logprobs: int | None
    reuse_cache: bool


class FifoGate:
    """Lets threads through one at a time, in the order they arrived.

    threading.Lock wakes waiters in no particular order; icm sends a call's prompts in
    sorted order (neighbours share prefixes) with several in flight, and serving them in
    arrival order keeps that order for the prefix cache."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._now_serving = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cond.wait_for(lambda: self._now_serving == ticket)
        try:
            yield
        finally:
            with self._cond:
                self._now_serving += 1
                self._cond.notify_all()


class ScoringServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        engine: LlamaEngine,
        *,
        max_logprobs: int = DEFAULT_MAX_LOGPROBS,
        verbose: bool = False,
        model_sha256: str | None = None,
    ) -> None:
        super().__init__(address, CompletionsHandler)
        from icm.backends.default_model import describe_model

        self.engine = engine
        self.gate = FifoGate()  # requests take turns in arrival order
        self.lock = threading.Lock()  # held while the engine runs (shutdown waits on it)
        self.max_logprobs = max_logprobs
        self.verbose = verbose
        self.model_id = served_model_id(engine.model_path)
        self.created = int(time.time())
        info = describe_model(engine.metadata, file_name=engine.model_path.name)
        self.model_card: dict[str, Any] = {
            "id": self.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "icm",
            "max_model_len": engine.n_ctx,
            # icm's own fields: the client builds its cache key and warnings from these.
            "icm": {
                "file": engine.model_path.name,
                "fingerprint": content_fingerprint(engine.model_path, model_sha256),
                "general_name": info.name,
                "instruction_tuned": info.instruction_tuned,
                "instruction_tuned_because": list(info.reasons),
                "n_ctx": engine.n_ctx,
                "n_vocab": engine.n_vocab,
                "slots": len(engine.slots),
            },
        }

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{port}/v1"

    def parse_completion(self, body: Any) -> CompletionRequest:
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        model = body.get("model")
        if model not in (None, "", self.model_id, self.engine.model_path.name):
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"model '{model}' is not served here; this server serves '{self.model_id}'",
            )
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                "'prompt' must be a string or a non-empty list of strings (token arrays are "
                "not supported)",
            )
        max_tokens = _field_int(body, "max_tokens", 1)
        if max_tokens not in (0, 1):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"'max_tokens' must be 0 or 1, got {max_tokens}: this server scores the next "
                "token only",
            )
        temperature = body.get("temperature")
        if max_tokens == 1 and temperature not in (None, 0, 0.0):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"'temperature' must be 0, got {temperature!r}: this server decodes greedily",
            )
        logprobs = _field_int(body, "logprobs", None)
        if logprobs is not None and not 0 <= logprobs <= self.max_logprobs:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"'logprobs' must be between 0 and {self.max_logprobs}, got {logprobs} "
                "(see --max-logprobs)",
            )
        for name, allowed in (("n", (None, 1)), ("best_of", (None, 1)), ("echo", (None, False))):
            if body.get(name) not in allowed:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"'{name}'={body.get(name)!r} is not supported"
                )
        if body.get("stream"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "'stream' is not supported")
        reuse_cache = body.get("cache_prompt", True)
        if not isinstance(reuse_cache, bool):
            raise RequestError(HTTPStatus.BAD_REQUEST, "'cache_prompt' must be true or false")
        return CompletionRequest(prompts, max_tokens, logprobs, reuse_cache)

    def complete(self, request: CompletionRequest) -> dict[str, Any]:
        choices = []
        n_prompt = n_cached = 0
        top_k = max(request.logprobs or 0, 1)
        with self.gate.turn(), self.lock:
            for index, prompt in enumerate(request.prompts):
                tokens = self.engine.tokenize(prompt)
                try:
                    scored = self.engine.next_token(tokens, top_k, reuse_cache=request.reuse_cache)
                except RequestError as e:
                    prefix = f"prompt {index}: " if len(request.prompts) > 1 else ""
                    raise RequestError(e.status, prefix + str(e)) from None
                n_prompt += scored.n_prompt
                n_cached += scored.n_cached
                choices.append(self._choice(index, prompt, scored, request))
        n_completion = len(choices) * request.max_tokens
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": choices,
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_completion,
                "total_tokens": n_prompt + n_completion,
                "prompt_tokens_details": {"cached_tokens": n_cached},
            },
        }

    @staticmethod
    def _choice(
        index: int, prompt: str, scored: NextToken, request: CompletionRequest
    ) -> dict[str, Any]:
        _, text, logprob = scored.top[0]  # greedy
        if request.max_tokens == 0:
            text = ""
        logprobs = None
        if request.logprobs is not None:
            # Two tokens with the same text (byte fallbacks) share one entry: their
            # probabilities add, as the label rule sums probabilities anyway.
            top: dict[str, float] = {}
            for _, piece, lp in scored.top[: request.logprobs]:
                top[piece] = float(np.logaddexp(top[piece], lp)) if piece in top else lp
            logprobs = {
                "tokens": [text] if request.max_tokens else [],
                "token_logprobs": [logprob] if request.max_tokens else [],
                "top_logprobs": [top],
                "text_offset": [len(prompt)] if request.max_tokens else [],
            }
        return {
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": "length",
        }


class CompletionsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "icm-llama-server"
    server: ScoringServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send_json(self, status: HTTPStatus, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._send_json(status, {"error": {"message": message, "type": kind, "code": int(status)}})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/health", "/v1/health"):
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            self._send_json(HTTPStatus.OK, {"object": "list", "data": [self.server.model_card]})
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                # Without a length the connection cannot be kept alive reliably.
                self.close_connection = True
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            length = int(length_header)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"the request body is {length} bytes, more than {MAX_BODY_BYTES}",
                )
            raw = self.rfile.read(length)
            if path not in ("/v1/completions", "/completions"):
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path}")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON ({e})"
                ) from None
            request = self.server.parse_completion(body)
            self._send_json(HTTPStatus.OK, self.server.complete(request))
        except RequestError as e:
            self._send_error(e.status, str(e))
        except ValueError as e:  # a malformed Content-Length
            self.close_connection = True
            self._send_error(HTTPStatus.BAD_REQUEST, f"bad request: {e}")
        except EngineError as e:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(e))


# ---------------------------------------------------------------------------------------
# Process
# ---------------------------------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """End this process when `parent_pid` (icm) ends, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG); everywhere a
    watchdog thread notices the parent is gone (this process is re-parented) within a second."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(3)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(
    model_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int | None = None,
    n_slots: int = DEFAULT_SLOTS,
    max_logprobs: int = DEFAULT_MAX_LOGPROBS,
    verbose: bool = False,
    on_ready: Any = None,
    model_sha256: str | None = None,
) -> None:
    """Load the model, listen, print the readiness line and serve until SIGINT/SIGTERM."""
    engine = LlamaEngine(model_path, n_ctx=n_ctx, n_threads=n_threads, n_slots=n_slots)
    try:
        server = ScoringServer(
            (host, port),
            engine,
            max_logprobs=max_logprobs,
            verbose=verbose,
            model_sha256=model_sha256,
        )
    except OSError as e:
        engine.close()
        raise EngineError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(
        f"{READY_PREFIX}{server.base_url} model={server.model_id} n_ctx={engine.n_ctx} "
        f"threads={n_threads or default_threads()} slots={n_slots} pid={os.getpid()}",
        flush=True,
    )
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        # A request may still be evaluating in a handler thread: free the model only once
        # it is done; if it takes too long, the process exit frees it.
        if server.lock.acquire(timeout=1.0):
            engine.close()
            server.lock.release()


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m icm.backends.llama_server",
        allow_abbrev=False,  # an abbreviation could silently mean another flag
        description="OpenAI-compatible next-token scoring server (llama.cpp, prefix caching).",
    )
    p.add_argument("--model", required=True, type=Path, help="GGUF model file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 = a free port")
    p.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, help="context size in tokens")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help="cached prompt prefixes")
    p.add_argument("--max-logprobs", type=int, default=DEFAULT_MAX_LOGPROBS)
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process ends")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument(
        "--sha256", default=None, help="the model file's sha256, if just verified (else hashed)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    for name in ("n_ctx", "slots", "max_logprobs"):
        if getattr(args, name) < 1:
            print(f"llama_server: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        serve(
            args.model,
            host=args.host,
            port=args.port,
            n_ctx=args.n_ctx,
            n_threads=args.threads,
            n_slots=args.slots,
            max_logprobs=args.max_logprobs,
            verbose=args.verbose,
            model_sha256=args.sha256,
        )
    except EngineError as e:
        print(f"llama_server: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    exit_code = main()
    # Skip interpreter teardown: a handler thread may still be inside llama.cpp, and
    # freeing the backend under it could crash on the way out.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
