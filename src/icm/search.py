"""Running ICM over a claim table: batches, the C++ search, and the trace.

The paper's protocol: split the claims into batches of about batch_size that never split
a consistency group, and search each batch independently. Gold labels are read only to
monitor agreement in the trace; they never reach the search.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from icm import _icm_core as core
from icm.testbeds.base import ClaimTable

_OUTCOME = {
    core.StepOutcome.INIT: "init",
    core.StepOutcome.UNCHANGED: "unchanged",
    core.StepOutcome.ACCEPTED: "accepted",
    core.StepOutcome.REJECTED: "rejected",
}


def label_to_bool(label: core.Label) -> bool | None:
    if label == core.Label.TRUE:
        return True
    if label == core.Label.FALSE:
        return False
    return None


def gold_agreement(labels: list[bool | None], gold: list[bool | None]) -> float | None:
    """Share of labeled claims whose label equals the gold label (monitoring only)."""
    pairs = [
        (lab, g) for lab, g in zip(labels, gold, strict=True) if lab is not None and g is not None
    ]
    if not pairs:
        return None
    return sum(lab == g for lab, g in pairs) / len(pairs)


def trace_record(batch: int, row: core.TraceRow, agreement: float | None) -> dict[str, Any]:
    return {
        "batch": batch,
        "iteration": row.iteration,
        "outcome": _OUTCOME[row.outcome],
        "claim": row.claim,
        "proposed": label_to_bool(row.proposed),
        "temperature": row.temperature,
        "delta": row.delta,
        "utility": row.utility,
        "mp": row.mp,
        "inconsistent": row.inconsistent,
        "n_labeled": row.n_labeled,
        "n_fixed": row.n_fixed,
        "n_requests": row.n_requests,
        "n_cache_hits": row.n_cache_hits,
        "n_prompt_claims": row.n_prompt_claims,
        "n_accepted": row.n_accepted,
        "gold_agreement": agreement,
    }


@dataclass
class BatchResult:
    batch: int
    claim_ids: list[str]
    labels: list[bool | None]
    scores: list[float]
    utility: float
    mp: float
    inconsistencies: int
    n_requests: int
    n_cache_hits: int
    seconds: float
    trace: list[dict[str, Any]] = field(default_factory=list)
    # How the requests travelled (not in the trace: they depend on --prefetch-depth, which
    # changes nothing else): scorer calls, each waiting for the one before; speculative
    # requests sent, and of those the ones the search needed. Counted since the batch's
    # search object was made (a resumed batch: since the resume).
    n_rounds: int = 0
    n_prefetched: int = 0
    n_prefetched_used: int = 0


@dataclass
class IcmResult:
    batches: list[BatchResult]

    @property
    def labels(self) -> dict[str, bool | None]:
        return {
            cid: lab for b in self.batches for cid, lab in zip(b.claim_ids, b.labels, strict=True)
        }

    @property
    def scores(self) -> dict[str, float]:
        return {cid: s for b in self.batches for cid, s in zip(b.claim_ids, b.scores, strict=True)}

    @property
    def trace(self) -> list[dict[str, Any]]:
        return [row for b in self.batches for row in b.trace]


StepCallback = Callable[[int, int, dict[str, Any]], None]  # (batch, n_batches, trace record)


@dataclass
class Progress:
    """Where a run stands: the batches finished, and the search state of the one in progress.
    Enough to continue exactly where it stopped (see icm.checkpoint)."""

    completed: list[BatchResult] = field(default_factory=list)
    batch: int | None = None  # the batch in progress
    state: core.SearchState | None = None  # its search state after the last step
    n_trace_rows: int = 0  # trace rows written so far, all batches


ProgressCallback = Callable[[Progress, BatchResult | None], None]  # (progress, batch just finished)


def batch_seed(seed: int, batch: int) -> int:
    """A distinct, reproducible seed per batch."""
    return (seed * 1_000_003 + batch * 7919) % (2**63)


def plan_batches(table: ClaimTable, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of about batch_size claims (claim indices into `table`) that never split a
    batching unit (see `batching_units`)."""
    units = batching_units(table, batch_size)
    claims = [core.Claim(c.id, c.prompt, f"unit{units[i]}") for i, c in enumerate(table.claims)]
    unit_set = core.ClaimSet(claims, [], table.label_words[0], table.label_words[1])
    return [list(b) for b in core.make_batches(unit_set, batch_size, seed)]


def batching_units(table: ClaimTable, batch_size: int) -> list[int]:
    """For each claim, the unit it is batched with: its consistency group, joined with the
    groups its relations and group constraints reach, as long as the joined unit stays
    within batch_size claims. A batch searches only the relations inside it, so a relation
    between two batches would be dropped; beyond batch_size a unit would make one batch
    too large, and the relations left across batches are counted instead (see
    `relations_across_batches`). Where no relation leaves a group the units are the
    groups, numbered in the same order, so the batches are those of the groups alone."""
    index = {c.id: i for i, c in enumerate(table.claims)}
    key_of = [c.group or "\0own:" + c.id for c in table.claims]  # as core.ClaimSet does
    unit_of_key: dict[str, int] = {}
    unit = [unit_of_key.setdefault(k, len(unit_of_key)) for k in key_of]
    parent = list(range(len(unit_of_key)))
    size = [0] * len(unit_of_key)
    for u in unit:
        size[u] += 1

    def root(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    links = [(r.a, r.b) for r in table.relations] + [
        (g.members[0], m) for g in table.group_constraints for m in g.members[1:]
    ]
    for a, b in links:
        ra, rb = root(unit[index[a]]), root(unit[index[b]])
        if ra != rb and size[ra] + size[rb] <= batch_size:
            ra, rb = min(ra, rb), max(ra, rb)  # the earlier unit names the joined one
            parent[rb] = ra
            size[ra] += size[rb]
    return [root(u) for u in unit]


def relations_across_batches(table: ClaimTable, batches: list[list[int]]) -> int:
    """Relations and group constraints whose claims fall in different batches: each batch
    is searched alone, so these constrain nothing."""
    batch_of = {table.claims[i].id: b for b, members in enumerate(batches) for i in members}
    n = sum(batch_of[r.a] != batch_of[r.b] for r in table.relations)
    return n + sum(len({batch_of[m] for m in g.members}) > 1 for g in table.group_constraints)


class ScorerAfterBatches(Protocol):
    """A scorer that depends on the batches labelled before (icm run --iterative: the
    model fine-tuned on their labels)."""

    def for_batch(
        self, batch: int, indices: list[int], completed: list[BatchResult]
    ) -> core.Scorer: ...


BatchScorer: TypeAlias = core.Scorer | Callable[[list[int]], core.Scorer] | ScorerAfterBatches


_Emit = Callable[[dict[str, Any], core.SearchState | None], None]


def scorer_for_all(scorer: BatchScorer, n_claims: int) -> core.Scorer | None:
    """One scorer for all `n_claims` claims of a table (the zero-shot pass), or None where
    the scorer changes from batch to batch (a ScorerAfterBatches: --iterative)."""
    if isinstance(scorer, core.Scorer):
        return scorer
    if hasattr(scorer, "for_batch"):
        return None
    return scorer(list(range(n_claims)))


def run_icm(
    table: ClaimTable,
    scorer: BatchScorer,
    params: core.SearchParams,
    batch_size: int,
    *,
    on_step: StepCallback | None = None,
    monitor_gold: bool = True,
    resume: Progress | None = None,
    on_progress: ProgressCallback | None = None,
    initial_labels: dict[str, bool] | None = None,
    parallel_batches: int = 1,
) -> IcmResult:
    """Label every claim of `table` with ICM, batch by batch.

    `scorer` is a core.Scorer, a function of the batch's claim indices (into `table`)
    that returns one (scorers that read structured requests, like the synthetic stand-in,
    index claims within the batch), or a ScorerAfterBatches, which also sees the batches
    finished before. `on_progress` is called after every step (and after every
    finished batch) with what `resume` needs to continue from there. Batches restored
    from `resume` carry no trace rows (the run directory's trace.jsonl has them).

    parallel_batches > 1 searches that many batches at once (threads; the search runs
    without the GIL and the scorer must take calls from several threads, as the backends
    do), so that their requests are in flight together. Everything the callbacks see is
    as in a sequential run, in the same order: the lowest unfinished batch reports its
    steps as they happen, the batches after it run ahead and report theirs when it is
    done. A checkpoint therefore holds the finished batches and the one reported; work of
    the batches ahead is redone by a resume, to the same result (and, through a response
    cache, without asking the model again). A ScorerAfterBatches is always sequential.

    `initial_labels` (claim id -> label) replace the random seed labels (--init zero-shot).
    """
    claim_set = table.to_claim_set()
    gold_all = table.gold_labels() if monitor_gold else [None] * len(table)
    batches = plan_batches(table, batch_size, params.seed)
    progress = Progress(n_trace_rows=resume.n_trace_rows if resume else 0)
    n_done = len(resume.completed) if resume is not None else 0
    progress.completed.extend(resume.completed[:n_done] if resume is not None else [])
    factory_lock = threading.Lock()

    def batch_scorer(b: int, indices: list[int]) -> core.Scorer:
        if isinstance(scorer, core.Scorer):
            return scorer
        with factory_lock:
            if hasattr(scorer, "for_batch"):
                return scorer.for_batch(b, indices, list(progress.completed))
            return scorer(indices)

    def search_batch(b: int, emit: _Emit) -> BatchResult:
        """Search batch b; emit(trace record, search state) after every step."""
        indices = batches[b]
        batch_params = _copy_params(params)
        batch_params.seed = batch_seed(params.seed, b)
        gold = [gold_all[i] for i in indices]
        search = core.Search(claim_set.subset(indices), batch_params, batch_scorer(b, indices))
        restored = resume.state if resume is not None and resume.batch == b else None
        if restored is not None:
            search.restore(restored)
        if initial_labels is not None and not (restored is not None and restored.initialized):
            _set_initial_labels(search, [table.claims[i].id for i in indices], initial_labels)
        trace: list[dict[str, Any]] = []
        last_row: core.TraceRow | None = None
        start = time.monotonic()
        while not search.done:
            row = last_row = search.step()
            labels = [label_to_bool(x) for x in search.labels]
            record = trace_record(b, row, gold_agreement(labels, gold))
            trace.append(record)
            emit(record, search.state() if on_progress is not None else None)
        claim_ids = [table.claims[i].id for i in indices]
        return _batch_result(b, claim_ids, search, trace, last_row, time.monotonic() - start)

    def report_step(b: int, record: dict[str, Any], state: core.SearchState | None) -> None:
        progress.batch = b
        if on_step is not None:
            on_step(b, len(batches), record)
        progress.n_trace_rows += 1
        if on_progress is not None:
            progress.state = state
            on_progress(progress, None)

    def report_batch(finished: BatchResult) -> None:
        progress.completed.append(finished)
        progress.batch, progress.state = None, None
        if on_progress is not None:
            on_progress(progress, finished)

    todo = list(range(n_done, len(batches)))
    if parallel_batches <= 1 or len(todo) <= 1 or hasattr(scorer, "for_batch"):
        for b in todo:
            progress.batch = b
            report_batch(search_batch(b, functools.partial(report_step, b)))
    else:
        _run_batches_at_once(todo, parallel_batches, search_batch, report_step, report_batch)
    return IcmResult(progress.completed)


def _set_initial_labels(
    search: core.Search, claim_ids: list[str], initial_labels: dict[str, bool]
) -> None:
    """Start the batch from `initial_labels` (claim id -> label) instead of random ones;
    a claim without one starts unset."""
    to_core = {True: core.Label.TRUE, False: core.Label.FALSE, None: core.Label.UNSET}
    search.set_initial_labels([to_core[initial_labels.get(cid)] for cid in claim_ids])


def _batch_result(
    b: int,
    claim_ids: list[str],
    search: core.Search,
    trace: list[dict[str, Any]],
    last_row: core.TraceRow | None,
    seconds: float,
) -> BatchResult:
    """What a finished batch search leaves: its labels, scores and counters."""
    return BatchResult(
        batch=b,
        claim_ids=claim_ids,
        labels=[label_to_bool(x) for x in search.labels],
        scores=list(search.scores),
        utility=search.utility,
        mp=search.mutual_predictability,
        inconsistencies=search.inconsistencies,
        n_requests=trace[-1]["n_requests"] if trace else 0,
        n_cache_hits=trace[-1]["n_cache_hits"] if trace else 0,
        seconds=seconds,
        trace=trace,
        n_rounds=last_row.n_rounds if last_row else 0,
        n_prefetched=last_row.n_prefetched if last_row else 0,
        n_prefetched_used=last_row.n_prefetched_used if last_row else 0,
    )


class _Stopped(Exception):
    """A batch searched ahead is abandoned: the run stopped."""


def _run_batches_at_once(
    todo: list[int],
    n_threads: int,
    search_batch: Callable[[int, _Emit], BatchResult],
    report_step: Callable[[int, dict[str, Any], core.SearchState | None], None],
    report_batch: Callable[[BatchResult], None],
) -> None:
    """Search the batches `todo` on n_threads threads, taking them in order, and report
    their steps and results in batch order from this thread (see run_icm)."""
    events: list[queue.SimpleQueue[tuple[str, Any, Any]]] = [queue.SimpleQueue() for _ in todo]
    stop = threading.Event()
    lock = threading.Lock()
    next_job = iter(range(len(todo)))

    def work() -> None:
        while not stop.is_set():
            with lock:
                i = next(next_job, None)
            if i is None:
                return
            put = events[i].put

            def emit(
                record: dict[str, Any], state: core.SearchState | None, put: Any = put
            ) -> None:
                if stop.is_set():
                    raise _Stopped
                put(("step", record, state))

            try:
                put(("done", search_batch(todo[i], emit), None))
            except _Stopped:
                return
            except BaseException as e:  # reported when this batch's turn comes
                put(("error", e, None))

    # Daemon threads: a batch stuck in a dead server never keeps icm from exiting.
    threads = [
        threading.Thread(target=work, name=f"icm-batch-{k}", daemon=True)
        for k in range(min(n_threads, len(todo)))
    ]
    for t in threads:
        t.start()
    try:
        for i, b in enumerate(todo):
            while True:
                kind, value, state = events[i].get()
                if kind == "step":
                    report_step(b, value, state)
                elif kind == "done":
                    report_batch(value)
                    break
                else:
                    raise value
    finally:
        stop.set()


def _copy_params(p: core.SearchParams) -> core.SearchParams:
    q = core.SearchParams()
    for name in dir(p):
        if not name.startswith("_") and name != "validate":
            setattr(q, name, getattr(p, name))
    return q
