"""How busy icm keeps a GPU server: sequential search, batches at once, speculative prefetch,
sparse and exact, side by side in one run against a simulated vLLM server.

    uv run python benchmarks/busy_server.py [--claims 256] [--K 3000] [--batches 4]
        [--depths 0,2,4,8] [--exact-claims 256] [--exact-K 300]
        [--exact-depths 0,4,2/1,4/1,4/1/f]
        [--concurrency 64]
        [--latency-ms 20] [--per-token-ms 0.02] [--capacity 256]

The server is benchmarks/sim_server.py (a separate process): each request takes
latency + per-token x prompt tokens and holds one of `capacity` slots. The claims are the
arithmetic testbed's; the search talks to the server through icm's own CompletionsScorer
(no response cache), as `icm run --base-url` does.

Columns: rounds (scorer calls, each waiting for the one before: the chain of dependent
requests), requests the search needed and speculative ones never needed (wasted), prompt
tokens (server side), mean requests in flight (time-weighted, over the run), wall time,
the two lower bounds on wall time, and the client's CPU per request (icm's process CPU
time / requests served). The bounds: "chain" = rounds x (latency + per-token x mean
tokens per request), per batch, summed over batches one after another or, at once, the
larger of the longest batch's chain and the sum spread over the batches at once; "work" =
the server's total service time / capacity ("work / concurrency": the same over the
client's --concurrency, what at most that many requests in flight allow); "wave" (one
batch) = the sum over scorer calls of the time the call's own requests take on
--concurrency slots with no client overhead (each its own service time, longest first, to
the first free slot): each call waits for its last request, so with the search's grouping
of requests into calls a client can hardly do better. Every configuration of one mode must
end with the same labels (checked and printed); in exact mode "wall / needed work" divides
by the first row's work when that row sent nothing speculative (every row needs the same
requests).
"""

from __future__ import annotations

import argparse
import heapq
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from icm.backends.base import CoreScorer, LabelScorer
from icm.backends.completions import CompletionsScorer, RetryPolicy
from icm.config import RunConfig
from icm.run_dir import git_hash
from icm.search import run_icm
from icm.testbeds import LoadOptions, get_testbed

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    name: str
    rounds: int
    needed: int
    wasted: int
    tokens: int
    in_flight: float
    wall: float
    chain_bound: float
    work_bound: float
    work_at_concurrency: float
    wave_bound: float | None  # one batch at a time only
    cpu_ms: float
    labels: dict[str, bool | None]


class CallTimes(LabelScorer):
    """Passes each scorer call (prefetched requests included) on to `scorer`, recording its
    prompt lengths for least_times(). Only lengths, during the run: the benchmark must not
    slow the search."""

    def __init__(self, scorer: CompletionsScorer) -> None:
        super().__init__()
        self.scorer = scorer
        self.lengths: list[list[int]] = []

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        self.lengths.append([len(p) for p in prompts])
        return self.scorer.score_prompts(prompts)

    def least_times(self, slots: int, args: argparse.Namespace) -> list[float]:
        """Per call, the time its requests take on `slots` server slots with no client
        overhead: each request's service time (as the simulated server computes it), longest
        first, given to the first free slot."""
        out = []
        for lengths in self.lengths:
            free = [0.0] * min(slots, len(lengths))
            for n in sorted(lengths, reverse=True):  # longest first: the tightest packing
                tokens = max(1, -(-n // 4))  # sim_server's count
                service = (args.latency_ms + args.per_token_ms * tokens) / 1000
                heapq.heapreplace(free, free[0] + service)
            out.append(max(free, default=0.0))
        return out


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "sim_server.py"),
            "--latency-ms",
            str(args.latency_ms),
            "--per-token-ms",
            str(args.per_token_ms),
            "--capacity",
            str(args.capacity),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("port "):
        server.kill()
        raise SystemExit(f"sim_server did not start: {line!r}")
    return server, f"http://127.0.0.1:{line.split()[1]}"


def measure(
    url: str,
    name: str,
    *,
    mode: str,
    claims: int,
    batches: int,
    K: int,
    depth: int,
    parallel: int,
    args: argparse.Namespace,
    call_limit: int = 0,
    fill: bool = False,
) -> Row:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=claims * batches, seed=0))
    cfg = RunConfig(
        K=K,
        seed=1,
        mp=mode,
        batch_size=claims,
        prefetch_depth=depth,
        prefetch_call_limit=call_limit,
        prefetch_fill=fill,
        concurrency=args.concurrency,
    )
    params = cfg.search_params(claims)
    httpx.post(url + "/reset")
    scorer = CompletionsScorer(
        [url], "sim", concurrency=args.concurrency, retry=RetryPolicy(retries=0)
    )
    calls = CallTimes(scorer)
    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        result = run_icm(table, CoreScorer(calls), params, claims, parallel_batches=parallel)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        scorer.close()
    stats = httpx.get(url + "/stats").json()
    served = max(stats["requests"], 1)
    per_request = (
        args.latency_ms / 1000 + args.per_token_ms / 1000 * stats["prompt_tokens"] / served
    )
    rounds = [b.n_rounds for b in result.batches]
    if parallel <= 1:
        chain = sum(rounds) * per_request
    else:
        chain = max(max(rounds), sum(rounds) / min(parallel, len(rounds))) * per_request
    needed = sum(b.n_requests for b in result.batches)
    wasted = sum(b.n_prefetched - b.n_prefetched_used for b in result.batches)
    # (needed counts requests of the trace; the server also answered the initialization's.)
    return Row(
        name=name,
        rounds=sum(rounds),
        needed=needed,
        wasted=wasted,
        tokens=stats["prompt_tokens"],
        in_flight=stats["mean_in_flight"],
        wall=wall,
        chain_bound=chain,
        work_bound=stats["work_seconds"] / stats["capacity"],
        work_at_concurrency=stats["work_seconds"] / min(stats["capacity"], args.concurrency),
        # One batch: one call after another, each at least its requests' time on
        # --concurrency slots; with this grouping of requests into calls no client can be
        # faster.
        wave_bound=sum(calls.least_times(min(stats["capacity"], args.concurrency), args))
        if parallel <= 1
        else None,
        cpu_ms=1000 * cpu / served,
        labels=result.labels,
    )


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    head = (
        "| | rounds | requests needed | wasted | prompt tokens | mean in flight | wall s "
        "| chain bound s | work bound s | wall / max bound | work / concurrency s "
        "| wave bound s | wall / wave bound | client CPU ms/request |"
    )
    print(head)
    print("|---" * 14 + "|")
    for r in rows:
        bound = max(r.chain_bound, r.work_bound)
        waves = (
            "- | -" if r.wave_bound is None else f"{r.wave_bound:.1f} | {r.wall / r.wave_bound:.2f}"
        )
        print(
            f"| {r.name} | {r.rounds:,} | {r.needed:,} | {r.wasted:,} | {r.tokens:,} "
            f"| {r.in_flight:.1f} | {r.wall:.1f} | {r.chain_bound:.1f} | {r.work_bound:.1f} "
            f"| {r.wall / bound:.2f} | {r.work_at_concurrency:.1f} | {waves} | {r.cpu_ms:.2f} |"
        )
    same = all(r.labels == rows[0].labels for r in rows)
    print(f"same labels in every row: {'yes' if same else 'NO'}")


def sparse_tables(url: str, args: argparse.Namespace) -> tuple[list[Row], list[Row]]:
    one = [
        measure(url, f"sparse, 1 batch, prefetch {d}", mode="sparse", claims=args.claims,
                batches=1, K=args.K, depth=d, parallel=1, args=args)
        for d in (int(x) for x in args.depths.split(","))
    ]  # fmt: skip
    print_table(f"sparse, {args.claims} claims, K = {args.K}, one batch", one)
    n = args.batches
    many = [
        measure(url, f"sparse, {n} batches one after another", mode="sparse",
                claims=args.claims, batches=n, K=args.K, depth=0, parallel=1, args=args),
        measure(url, f"sparse, {n} batches at once", mode="sparse", claims=args.claims,
                batches=n, K=args.K, depth=0, parallel=n, args=args),
        measure(url, f"sparse, {n} batches at once, prefetch 4", mode="sparse",
                claims=args.claims, batches=n, K=args.K, depth=4, parallel=n, args=args),
    ]  # fmt: skip
    print_table(f"sparse, {n} batches of {args.claims} claims, K = {args.K}", many)
    print(
        f"\n{n} batches at once / one batch: {many[1].wall / one[0].wall:.2f}x "
        f"(one batch {one[0].wall:.1f} s; {n} one after another {many[0].wall:.1f} s)"
    )
    return one, many


def prefetch_spec(text: str) -> tuple[int, int, bool]:
    """'4' -> depth 4, no call limit; '4/1' -> depth 4, speculative calls of 1 request;
    '4/1/f' -> the same with --prefetch-fill."""
    depth, limit, fill = ([*text.split("/"), "", ""])[:3]
    if fill not in ("", "f"):
        raise SystemExit(f"--exact-depths: '{text}': the third part can only be 'f'")
    return int(depth), int(limit or 0), fill == "f"


def exact_table(url: str, args: argparse.Namespace) -> list[Row]:
    rows = [
        measure(url, f"exact, 1 batch, prefetch {d}" + (f", call limit {lim}" if lim else "")
                + (", fill" if fill else ""),
                mode="exact", claims=args.exact_claims, batches=1, K=args.exact_K, depth=d,
                parallel=1, args=args, call_limit=lim, fill=fill)
        for d, lim, fill in (prefetch_spec(x) for x in args.exact_depths.split(","))
    ]  # fmt: skip
    print_table(f"exact, {args.exact_claims} claims, K = {args.exact_K}, one batch", rows)
    if rows[0].wasted == 0:
        # Every row needs the same requests (same trajectory); the first row sent no
        # others, so its work is the needed work of every row.
        needed = rows[0].work_at_concurrency
        print(f"\nneeded work / concurrency: {needed:.1f} s (the first row's)")
        for r in rows:
            print(f"- {r.name}: wall / needed work {r.wall / needed:.2f}")
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--claims", type=int, default=256, help="claims per batch (sparse)")
    p.add_argument("--K", type=int, default=3000)
    p.add_argument("--batches", type=int, default=4, help="batches of the multi-batch rows")
    p.add_argument("--depths", default="0,2,4,8", help="prefetch depths of one batch")
    p.add_argument("--exact-claims", type=int, default=256)
    p.add_argument("--exact-K", type=int, default=300)
    p.add_argument(
        "--exact-depths",
        default="0,4,2/1,4/1,4/1/f",
        help="prefetch depths of exact mode; D/L: depth D, speculative calls of at most L "
        "requests (--prefetch-call-limit); D/L/f: and --prefetch-fill",
    )
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--per-token-ms", type=float, default=0.02)
    p.add_argument("--capacity", type=int, default=256)
    p.add_argument("--modes", default="sparse,exact", help="which tables: sparse, exact")
    args = p.parse_args()
    server, url = start_server(args)
    try:
        print(
            f"busy_server: simulated server {args.latency_ms:g} ms + {args.per_token_ms:g} ms "
            f"per prompt token, {args.capacity} slots; client --concurrency {args.concurrency}; "
            f"git {git_hash() or 'unknown'}"
        )
        if "sparse" in args.modes:
            sparse_tables(url, args)
        if "exact" in args.modes:
            exact_table(url, args)
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
