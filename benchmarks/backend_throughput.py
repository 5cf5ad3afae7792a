"""Prompt tokens per second through icm's scorer and its llama.cpp server, with and without
the prefix-sharing order of requests, side by side in one run.

    uv run python benchmarks/backend_throughput.py [--claims 12] [--repeats 2]

The workload is one step of ICM with the original code's exact mutual predictability: for
each of N labeled arithmetic claims, a prompt with all the other claims as labeled
demonstrations (in a fixed order) and then the claim. Three ways to send the same prompts:
"sorted" is what icm does (requests sorted so that consecutive ones share the longest
prefix), "shuffled" sends them in a random order, "no cache" in a random order with the
server's prefix cache off (cache_prompt false). All go through CompletionsScorer (icm's
default concurrency 4) to one embedded server on the packaged model (default 2 slots),
whose KV cache is flushed before each measurement. Throughput counts all prompt tokens
(usage.prompt_tokens), cached or not. The ratio sorted / shuffled is printed last.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

from icm.backends.completions import CompletionsScorer
from icm.backends.default_model import packaged_model_path
from icm.backends.embedded import embedded_server
from icm.run_dir import git_hash
from icm.testbeds import get_testbed

ROOT = Path(__file__).resolve().parents[1]


def exact_mp_step(n_claims: int, seed: int) -> list[str]:
    """The prompts of one exact-MP step over `n_claims` claims with random labels."""
    claims = get_testbed("arithmetic").load("train").claims
    rng = random.Random(seed)
    picked = rng.sample(claims, n_claims)
    labels = [rng.random() < 0.5 for _ in picked]
    prompts = []
    for target in range(n_claims):
        demos = "".join(
            c.prompt + ("True" if label else "False") + "\n\n"
            for i, (c, label) in enumerate(zip(picked, labels, strict=True))
            if i != target
        )
        prompts.append(demos + picked[target].prompt)
    return prompts


def flush(url: str, n_slots: int) -> None:
    """Fill every server slot with an unrelated prompt, so nothing useful stays cached."""
    with CompletionsScorer([url], "embedded", concurrency=1, sort_prompts=False) as scorer:
        scorer.score_prompts([f"Flush {i}: {'lorem ipsum ' * 8}" for i in range(n_slots)])


def measure(
    url: str, prompts: list[str], *, sort: bool, cache: bool, concurrency: int
) -> dict[str, float]:
    with CompletionsScorer(
        [url],
        "embedded",
        concurrency=concurrency,
        sort_prompts=sort,
        extra_body=None if cache else {"cache_prompt": False},
    ) as scorer:
        started = time.perf_counter()
        scorer.score_prompts(prompts)
        seconds = time.perf_counter() - started
        tokens = scorer.stats.prompt_tokens
        cached = scorer.stats.cached_prompt_tokens
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "cached": cached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=12, help="labeled claims (prompts/step)")
    parser.add_argument("--repeats", type=int, default=2, help="workloads, each in both orders")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2, help="server KV-cache slots")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    print(f"git {git_hash(ROOT, short=True) or 'unknown'}")
    print(
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (shared machines: "
        "compare the two orders, not absolute numbers)"
    )
    results: dict[str, list[dict[str, float]]] = {"sorted": [], "shuffled": [], "no cache": []}
    with embedded_server(packaged_model_path(), slots=args.slots, threads=args.threads) as server:
        print(f"server {server.base_url}, model {server.model_path.name}, slots {args.slots}")
        for repeat in range(args.repeats):
            prompts = exact_mp_step(args.claims, seed=repeat)
            shuffled = prompts[:]
            random.Random(100 + repeat).shuffle(shuffled)
            # Alternate which goes first, so drift in machine load hits all alike.
            runs = [
                ("sorted", prompts, True, True),
                ("shuffled", shuffled, False, True),
                ("no cache", shuffled, False, False),
            ]
            for name, batch, sort, cache in runs if repeat % 2 == 0 else runs[::-1]:
                flush(server.base_url, args.slots)
                r = measure(
                    server.base_url, batch, sort=sort, cache=cache, concurrency=args.concurrency
                )
                results[name].append(r)
                print(
                    f"  workload {repeat} {name:>8}: {r['tokens']:6.0f} prompt tokens in "
                    f"{r['seconds']:6.1f} s = {r['tok_s']:6.0f} tok/s "
                    f"({100 * r['cached'] / r['tokens']:.0f}% from the prefix cache)"
                )
    mean = {k: statistics.mean(r["tok_s"] for r in v) for k, v in results.items()}
    for name, value in mean.items():
        spread = statistics.stdev(r["tok_s"] for r in results[name]) if args.repeats > 1 else 0
        print(f"{name:>8}: {value:6.0f} +- {spread:.0f} prompt tok/s")
    print(f"ratio sorted / no cache: {mean['sorted'] / mean['no cache']:.2f}x")
    print(f"ratio sorted / shuffled: {mean['sorted'] / mean['shuffled']:.2f}x")


if __name__ == "__main__":
    main()
