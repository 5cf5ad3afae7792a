"""Checkpoints of a run, written after the first step, every finished batch, at most every
--checkpoint-every seconds between them, and when the run stops, so that a crash, a kill or a
flaky server costs at most those seconds of work.

    state.json      where the run stands: finished batches, the search state of the batch
                    in progress (labels, iteration, accept count, RNG state, context draw),
                    how many trace rows are valid, and what each execution of the run (a
                    segment: the first start, then each resume) has cost so far (backend
                    requests and tokens, wall time). Replaced atomically at each checkpoint.
    batches.jsonl   one line per finished batch (labels, scores, figures), appended.
    trace.jsonl     one line per step, appended (fsynced at each checkpoint).

Appended files may hold a torn or extra last line after a kill; `load_progress` trusts
state.json and cuts them back to what it counts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from icm import _icm_core as core
from icm.errors import ConfigError
from icm.run_dir import naming_path, read_json_object, write_json
from icm.search import BatchResult, Progress

STATE_FILE = "state.json"
BATCHES_FILE = "batches.jsonl"
TRACE_FILE = "trace.jsonl"
FORMAT_VERSION = 1

_LABEL_TO_INT = {core.Label.UNSET: -1, core.Label.FALSE: 0, core.Label.TRUE: 1}
_INT_TO_LABEL = {v: k for k, v in _LABEL_TO_INT.items()}


def state_to_json(s: core.SearchState) -> dict[str, Any]:
    return {
        "labels": [_LABEL_TO_INT[x] for x in s.labels],
        "iteration": s.iteration,
        "n_accepted": s.n_accepted,
        "rng_state": s.rng_state,
        "initialized": s.initialized,
        "context_epoch": s.context_epoch,
        "context_pool": list(s.context_pool),
    }


def state_from_json(d: dict[str, Any]) -> core.SearchState:
    s = core.SearchState()
    s.labels = [_INT_TO_LABEL[int(x)] for x in d["labels"]]
    s.iteration = int(d["iteration"])
    s.n_accepted = int(d["n_accepted"])
    s.rng_state = str(d["rng_state"])
    s.initialized = bool(d["initialized"])
    s.context_epoch = int(d["context_epoch"])
    s.context_pool = [int(x) for x in d["context_pool"]]
    return s


def batch_to_json(b: BatchResult) -> dict[str, Any]:
    return {
        "batch": b.batch,
        "claim_ids": b.claim_ids,
        "labels": b.labels,
        "scores": b.scores,
        "utility": b.utility,
        "mp": b.mp,
        "inconsistencies": b.inconsistencies,
        "n_requests": b.n_requests,
        "n_cache_hits": b.n_cache_hits,
        "seconds": b.seconds,
        "n_rounds": b.n_rounds,
        "n_prefetched": b.n_prefetched,
        "n_prefetched_used": b.n_prefetched_used,
    }


def batch_from_json(d: dict[str, Any]) -> BatchResult:
    return BatchResult(**d, trace=[])


def _append_line(path: Path, row: dict[str, Any]) -> None:
    with naming_path(path), path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _keep_lines(path: Path, n: int) -> list[str]:
    """Cut `path` back to its first n complete lines and return them."""
    if not path.exists():
        if n:
            raise ConfigError(f"{path}: missing, but the checkpoint counts {n} lines in it")
        return []
    with path.open("rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is torn or empty
    if len(complete) < n:
        raise ConfigError(
            f"{path}: holds {len(complete)} complete lines, the checkpoint counts {n}"
        )
    keep = complete[:n]
    if len(complete) == n and lines[-1] == b"":  # already as counted: leave it untouched
        return [line.decode("utf-8") for line in keep]
    with naming_path(path), path.open("wb") as f:
        f.write(b"".join(line + b"\n" for line in keep))
        f.flush()
        os.fsync(f.fileno())
    return [line.decode("utf-8") for line in keep]


DEFAULT_CHECKPOINT_SECONDS = 2.0


class CheckpointWriter:
    """The on_progress callback of run_icm. A finished batch is persisted at once; progress
    within a batch after the first step of each execution (so that every execution is on
    record) and then at most every `every_seconds` (0: every step); `flush()` persists the
    last step seen, and the run calls it however it ends. A kill loses at most the steps of
    the last `every_seconds`, which a resume redoes to the same result.

    `trace_file` is the open trace.jsonl that on_step appends to without syncing: it is
    fsynced before state.json counts its rows, so trace.jsonl always holds at least the
    rows state.json counts (load_progress cuts off the rest). `segments` gives the cost of
    the run's executions so far (see `earlier_segments`)."""

    def __init__(
        self,
        run_dir: Path,
        segments: Callable[[], list[dict[str, Any]]] | None = None,
        *,
        trace_file: IO[str] | None = None,
        every_seconds: float = 0.0,
    ) -> None:
        self.run_dir = run_dir
        self.segments = segments
        self.trace_file = trace_file
        self.every_seconds = every_seconds
        # Where the run stood after the last step seen, not yet on disk. A snapshot, not the
        # Progress object, which run_icm goes on changing (an interrupt can land between
        # its updates).
        self._pending: tuple[int, int | None, core.SearchState | None, int] | None = None
        self._last_write: float | None = None

    def __call__(self, progress: Progress, finished: BatchResult | None) -> None:
        self._pending = (
            len(progress.completed),
            progress.batch,
            progress.state,  # a fresh object every step, never changed afterwards
            progress.n_trace_rows,
        )
        if finished is not None:
            _append_line(self.run_dir / BATCHES_FILE, batch_to_json(finished))
        if (
            finished is not None
            or self._last_write is None
            or time.monotonic() - self._last_write >= self.every_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Persist the last step seen, if it is not on disk yet."""
        if self._pending is None:
            return
        n_completed, batch, state, n_trace_rows = self._pending
        if self.trace_file is not None and not self.trace_file.closed:
            with naming_path(self.trace_file.name):
                self.trace_file.flush()
                os.fsync(self.trace_file.fileno())
        write_json(
            self.run_dir / STATE_FILE,
            {
                "format": FORMAT_VERSION,
                "n_completed": n_completed,
                "batch": batch,
                "state": None if state is None else state_to_json(state),
                "n_trace_rows": n_trace_rows,
                "segments": self.segments() if self.segments else [],
            },
        )
        self._pending = None
        self._last_write = time.monotonic()


def earlier_segments(run_dir: Path) -> list[dict[str, Any]]:
    """What the earlier executions of a run cost, one record each, for a resume to add to.

    metrics.json, written when an execution ends (completed, interrupted, failed), has the
    final figures of every execution up to that one; state.json has those of every
    execution up to the last checkpoint. An execution that was killed (SIGKILL, power loss)
    wrote no metrics: its figures are those of its last checkpoint (work after it, redone by
    the resume, is then counted once, by the resume) and its status says "killed"."""
    final: list[dict[str, Any]] = []
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        m = read_json_object(metrics_path)
        final = m.get("segments") or [
            {
                "started": m.get("created"),
                "status": m.get("status"),
                "wall_seconds": m.get("wall_seconds", 0.0),
                "backend": m.get("backend") or {},
            }
        ]
    checkpointed: list[dict[str, Any]] = []
    state_path = run_dir / STATE_FILE
    if state_path.exists():
        checkpointed = read_json_object(state_path).get("segments", [])
    for where, segments in ((metrics_path, final), (state_path, checkpointed)):
        for i, seg in enumerate(segments if isinstance(segments, list) else [None]):
            if not (
                isinstance(seg, dict)
                and isinstance(seg.get("wall_seconds"), int | float)
                and isinstance(seg.get("backend"), dict)
            ):
                raise ConfigError(f"{where}: field 'segments[{i}]': not a segment record")
    out = list(final)
    for seg in checkpointed[len(final) :]:
        status = seg.get("status")
        out.append({**seg, "status": "killed" if status == "running" else status})
    return out


def sum_segments(segments: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    """Total wall seconds and backend counts over a run's executions."""
    backend: dict[str, Any] = {}
    for seg in segments:
        for key, value in seg["backend"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                backend[key] = backend.get(key, 0) + value
    if isinstance(backend.get("seconds"), float):
        backend["seconds"] = round(backend["seconds"], 3)
    return round(sum(seg["wall_seconds"] for seg in segments), 3), backend


def load_progress(run_dir: Path) -> Progress | None:
    """The saved progress of a run directory (None if it has none), with batches.jsonl and
    trace.jsonl cut back to what the checkpoint counts."""
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT_VERSION:
            raise ConfigError(
                f"{path}: field 'format': unsupported checkpoint version {data.get('format')}"
            )
        _check_state_file(data, path)  # before it cuts any file back to what it counts
        lines = _keep_lines(run_dir / BATCHES_FILE, int(data["n_completed"]))
        completed = [batch_from_json(json.loads(line)) for line in lines]
        for i, b in enumerate(completed):
            _check_batch(b, i, run_dir / BATCHES_FILE)
        _keep_lines(run_dir / TRACE_FILE, int(data["n_trace_rows"]))
        state = None if data["state"] is None else state_from_json(data["state"])
        return Progress(
            completed=completed,
            batch=data["batch"],
            state=state,
            n_trace_rows=int(data["n_trace_rows"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: not a valid icm checkpoint ({e})") from None


def read_batches_without_state(run_dir: Path) -> list[BatchResult] | None:
    """The finished batches of a run whose state.json is gone: every complete line of
    batches.jsonl (a torn last line is left out, and the file left as it is), checked. None
    if there is no batches.jsonl."""
    path = run_dir / BATCHES_FILE
    if not path.exists():
        return None
    lines = path.read_bytes().split(b"\n")[:-1]  # after the last newline: torn or empty
    try:
        completed = [batch_from_json(json.loads(line)) for line in lines]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ConfigError(f"{path}: not a valid list of finished batches ({e})") from None
    for i, b in enumerate(completed):
        _check_batch(b, i, path)
    return completed


def _is_int(value: Any, low: int = 0, high: int = 2**62) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_state_file(data: Any, path: Path) -> None:
    """state.json's own consistency: counts that are counts, a search state that can be."""

    def bad(field: str, why: str) -> None:
        raise ConfigError(f"{path}: field '{field}': {why}")

    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object")
    for name in ("n_completed", "n_trace_rows"):
        if not _is_int(data.get(name)):
            bad(name, f"must be a count (an integer >= 0), got {data.get(name)!r}")
    batch, state = data.get("batch"), data.get("state")
    if batch is not None and batch != data["n_completed"]:
        # batches run in order: the one in progress is the first unfinished one
        bad("batch", f"must be n_completed ({data['n_completed']}) or null, got {batch!r}")
    if state is None:
        return
    if batch is None:
        bad("state", "a search state without a batch in progress")
    if not isinstance(state, dict):
        bad("state", "must be an object or null")
    labels = state.get("labels")
    if not (isinstance(labels, list) and all(x in (-1, 0, 1) for x in labels)):
        bad("state.labels", "must be a list of -1 (unset), 0 (false) or 1 (true)")
    if not _is_int(state.get("iteration")):
        bad("state.iteration", f"must be an integer >= 0, got {state.get('iteration')!r}")
    if not _is_int(state.get("n_accepted"), 0, state["iteration"]):
        bad(
            "state.n_accepted",
            f"must be in [0, iteration = {state['iteration']}], got {state.get('n_accepted')!r}",
        )
    if not _is_int(state.get("context_epoch")):
        bad("state.context_epoch", f"must be an integer >= 0, got {state.get('context_epoch')!r}")
    pool = state.get("context_pool")
    if not (isinstance(pool, list) and all(_is_int(c, 0, len(labels) - 1) for c in pool)):
        bad("state.context_pool", f"must be claim indices in [0, {len(labels)})")
    if not isinstance(state.get("rng_state"), str):
        bad("state.rng_state", "must be a string")
    if not isinstance(state.get("initialized"), bool):
        bad("state.initialized", "must be true or false")


def _check_batch(b: BatchResult, index: int, path: Path) -> None:
    where = f"{path}:{index + 1}"
    if b.batch != index:
        raise ConfigError(f"{where}: field 'batch': expected {index}, got {b.batch!r}")
    n = len(b.claim_ids)
    for name in ("labels", "scores"):
        if len(getattr(b, name)) != n:
            raise ConfigError(
                f"{where}: field '{name}': {len(getattr(b, name))} values for {n} claims"
            )


def check_progress(
    progress: Progress, batches: list[list[int]], claim_ids: list[str], k: int, run_dir: Path
) -> None:
    """The checkpoint of `run_dir` against the run's plan: the finished batches hold the
    claims of the planned ones, and the batch in progress exists, has as many labels as
    claims and is not past iteration K. Otherwise the resume would label other claims,
    or finish at once with part of a batch labelled, without a word."""
    state_path, batches_path = run_dir / STATE_FILE, run_dir / BATCHES_FILE
    if len(progress.completed) > len(batches):
        raise ConfigError(
            f"{state_path}: field 'n_completed': {len(progress.completed)} batches, "
            f"but the run has {len(batches)}"
        )
    for b, done in enumerate(progress.completed):
        if done.claim_ids != [claim_ids[i] for i in batches[b]]:
            raise ConfigError(
                f"{batches_path}:{b + 1}: field 'claim_ids': not the claims of the run's batch "
                f"{b} (were the testbed's data or icm's batching changed since the run began?)"
            )
    if progress.batch is None or progress.state is None:
        return
    if progress.batch >= len(batches):
        raise ConfigError(
            f"{state_path}: field 'batch': {progress.batch}, but the run has {len(batches)} batches"
        )
    n = len(batches[progress.batch])
    if len(progress.state.labels) != n:
        raise ConfigError(
            f"{state_path}: field 'state.labels': {len(progress.state.labels)} labels for "
            f"batch {progress.batch} of {n} claims"
        )
    if progress.state.iteration > k:
        raise ConfigError(
            f"{state_path}: field 'state.iteration': {progress.state.iteration} is beyond K = {k}"
        )
