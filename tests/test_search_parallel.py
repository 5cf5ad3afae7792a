"""Batches at once (run_icm's parallel_batches): the same labels, trace, progress reports
and checkpoints as one batch after another, with requests of several batches in flight."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

import pytest

from icm import _icm_core as core
from icm.config import RunConfig
from icm.run import ScorerHandle, synthetic_scorer_factory
from icm.search import Progress, run_icm
from icm.testbeds import LoadOptions, get_testbed


class SlowHashScorer(core.Scorer):
    """A deterministic function of the prompt that takes a few ms a call and notes how many
    calls were in progress at once."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.active = self.most_active = self.calls = 0
        self.fail_on_call = fail_on_call

    def score(self, requests):
        with self.lock:
            self.calls += 1
            calls = self.calls
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(0.002)  # the GIL is released here, as while waiting for a server
            if calls == self.fail_on_call:
                raise RuntimeError("the server went away")
            out = []
            for r in requests:
                h = int.from_bytes(hashlib.sha256(r.prompt.encode()).digest()[:8], "little")
                gap = (h / 2**64) * 6 - 3
                out.append(core.LabelScore(-math.log1p(math.exp(-gap)), -math.log1p(math.exp(gap))))
            return out
        finally:
            with self.lock:
                self.active -= 1


def run(scorer: Any, parallel: int, **kwargs: Any) -> tuple[Any, list[tuple]]:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=60, seed=2))
    params = RunConfig(K=40, prefetch_depth=kwargs.pop("prefetch_depth", 0)).search_params()
    reports: list[tuple] = []
    steps: list[tuple] = []

    def on_progress(p: Progress, finished: Any) -> None:
        state = None if p.state is None else (p.state.iteration, list(p.state.labels))
        reports.append(
            (len(p.completed), p.batch, state, p.n_trace_rows, finished and finished.labels)
        )

    result = run_icm(
        table,
        scorer,
        params,
        batch_size=12,
        on_step=lambda b, n, rec: steps.append((b, n, rec["iteration"], rec["utility"])),
        on_progress=on_progress,
        parallel_batches=parallel,
        **kwargs,
    )
    return result, reports + steps


def comparable(result: Any) -> list[tuple]:
    return [
        (b.batch, b.claim_ids, b.labels, b.scores, b.utility, b.n_requests, b.n_cache_hits, b.trace)
        for b in result.batches
    ]


def test_batches_at_once_give_the_sequential_run_with_requests_in_flight_together() -> None:
    one = SlowHashScorer()
    sequential, seq_reports = run(one, 1)
    many = SlowHashScorer()
    parallel, par_reports = run(many, 4)
    assert len(sequential.batches) >= 4
    assert comparable(parallel) == comparable(sequential)
    assert par_reports == seq_reports  # every callback, in the same order
    assert one.most_active == 1
    assert many.most_active > 1


def test_batches_at_once_with_prefetch_and_a_scorer_per_batch() -> None:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=60, seed=2))

    def factory() -> Any:
        return synthetic_scorer_factory(table, 0, ScorerHandle(None, "synthetic"))  # type: ignore[arg-type]

    sequential, seq_reports = run(factory(), 1)
    parallel, par_reports = run(factory(), 3, prefetch_depth=2)
    assert comparable(parallel) == comparable(sequential)
    assert par_reports == seq_reports
    assert sum(b.n_prefetched for b in parallel.batches) > 0


def test_resume_of_batches_at_once_continues_the_reported_batch() -> None:
    full, _ = run(SlowHashScorer(), 1)
    # Stop where a checkpoint would have left it: two batches done, the third at a step.
    table = get_testbed("arithmetic").load("train", LoadOptions(size=60, seed=2))
    params = RunConfig(K=40).search_params()
    saved: list[Progress] = []

    def on_progress(p: Progress, finished: Any) -> None:
        if len(p.completed) == 2 and p.state is not None and p.state.iteration == 17:
            saved.append(Progress(list(p.completed), p.batch, p.state, p.n_trace_rows))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_icm(table, SlowHashScorer(), params, 12, on_progress=on_progress, parallel_batches=4)
    resumed = run_icm(table, SlowHashScorer(), params, 12, resume=saved[0], parallel_batches=4)
    assert [b.labels for b in resumed.batches] == [b.labels for b in full.batches]
    assert [b.utility for b in resumed.batches] == [b.utility for b in full.batches]


def test_a_failing_batch_is_reported_in_its_turn() -> None:
    """The error of a batch searched ahead surfaces once the batches before it are
    reported finished, as it would one batch after another."""
    table = get_testbed("arithmetic").load("train", LoadOptions(size=60, seed=2))
    params = RunConfig(K=40).search_params()
    reports: list[tuple[int, int | None]] = []

    def on_progress(p: Progress, finished: Any) -> None:
        reports.append((len(p.completed), p.batch))

    with pytest.raises(RuntimeError, match="went away"):
        run_icm(
            table,
            SlowHashScorer(fail_on_call=60),
            params,
            12,
            on_progress=on_progress,
            parallel_batches=4,
        )
    completed = [n for n, _ in reports]
    assert completed == sorted(completed) and reports


def test_icm_run_writes_the_same_run_directory_with_batches_at_once(tmp_path: Any) -> None:
    from icm.run import start_run

    dirs = {}
    for parallel, depth in ((1, 0), (3, 2)):
        cfg = RunConfig(
            testbed="arithmetic",
            size=60,
            batch_size=12,
            K=30,
            model="synthetic",
            parallel_batches=parallel,
            prefetch_depth=depth,
            out=str(tmp_path / f"p{parallel}"),
        )
        dirs[parallel] = start_run(cfg, progress=False)
    for name in ("trace.jsonl", "labels.jsonl"):
        assert (dirs[1] / name).read_text() == (dirs[3] / name).read_text(), name
    import json

    def figures(d: Any) -> list[dict]:
        rows = [json.loads(x) for x in (d / "batches.jsonl").read_text().splitlines()]
        keep = ("batch", "claim_ids", "labels", "scores", "utility", "n_requests")
        return [{k: r[k] for k in keep} for r in rows]

    assert figures(dirs[1]) == figures(dirs[3])
