"""search_overhead: icm's own (non-model) work per search iteration at N = 10^2..10^5 claims,
side by side with a straightforward re-implementation of the original code's per-step
Python bookkeeping, and the peak memory of a 10^5-claim search.

    uv run python benchmarks/search_overhead.py [--steps 3000] \
        [--plot docs/results/search_overhead.png]

The C++ side is benchmarks/search_overhead.cpp (built here with cmake, Release): sparse
mutual predictability, half the claims labeled, a synthetic scorer whose time is subtracted.
The original's bookkeeping per step (src/experiments/ICM.py): build the labeled pool, deep-
copy the demonstrations, the sampling-weight loop (for every labeled claim, scan all claims
for its group: quadratic), the weighted draw, a deep copy for the proposal, and the scan for
inconsistent pairs. It is timed on the same state; where one step would take minutes it is
extrapolated from the quadratic fit of the measured sizes, and marked as such.
Goals (issue 7): under 100 us per iteration at 10^5, growth no worse than logarithmic,
peak memory of the 10^5 search under 1 GiB. Figures are printed last.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from icm.run_dir import git_hash

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"


def tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def build_cpp() -> Path:
    subprocess.run(
        [
            tool("cmake"),
            "-S",
            str(ROOT),
            "-B",
            str(BUILD),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DICM_BUILD_TESTS=OFF",
            "-DICM_BUILD_BENCHMARKS=ON",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([tool("cmake"), "--build", str(BUILD)], check=True, capture_output=True)
    return BUILD / "core" / "search_overhead"


def original_demonstrations(n: int) -> tuple[dict[int, dict], list[int]]:
    """The original's per-claim records, four answers per question, half of them labeled."""
    demos = {}
    for uid in range(n):
        q = uid // 4
        demos[uid] = {
            "uid": uid,
            "question": f"Question {q}: what is the answer?",
            "choice": f"answer {uid}",
            "prompt": f"Question: Question {q}\nClaim: answer {uid}\nI think this claim is ",
            "consistency_id": q,
            "consistency_key": uid % 4,
            "source": "bench",
            "vanilla_label": uid % 4 == q % 4,
            "label": (uid % 4 == q % 4) if uid < n // 2 else None,
            "type": "seed" if uid < n // 2 else "predict",
        }
    return demos, list(range(n))


def original_step(
    demonstrations: dict[int, dict], whole_ids: list[int], rng: random.Random
) -> None:
    cur_pool = {k: v for k, v in demonstrations.items() if v["label"] is not None}
    copy.deepcopy(demonstrations)  # initial_demos = deepcopy(demonstrations)
    weights = [1 for _ in range(len(whole_ids))]
    for i in whole_ids:
        if i in cur_pool:
            same = [
                j
                for j in whole_ids
                if demonstrations[j]["consistency_id"] == demonstrations[i]["consistency_id"]
            ]
            for j in same:
                if j not in cur_pool:
                    weights[j] = 100
    example_id = rng.choices(whole_ids, k=1, weights=weights)[0]
    tmp = copy.deepcopy(demonstrations)  # tmp_demonstrations for the proposal
    tmp[example_id]["label"] = 1
    groups: dict[int, list[dict]] = {}
    for claim in (v for v in tmp.values() if v["label"] is not None):
        groups.setdefault(claim["consistency_id"], []).append(claim)
    pairs = 0
    for group in groups.values():
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                ga, gb = group[a], group[b]
                if (
                    ga["consistency_key"] != gb["consistency_key"]
                    and ga["label"] == gb["label"] == 1
                ):
                    pairs += 1


def time_original(n: int, budget: float) -> float | None:
    """Seconds per step, or None if one step would not fit the budget."""
    demos, ids = original_demonstrations(n)
    rng = random.Random(0)
    steps, start = 0, time.perf_counter()
    while True:
        original_step(demos, ids, rng)
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed > budget or steps >= 50:
            return elapsed / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="timed C++ steps per size")
    parser.add_argument(
        "--original-budget",
        type=float,
        default=20.0,
        help="seconds to spend timing the original's bookkeeping per size",
    )
    parser.add_argument(
        "--max-original-n",
        type=int,
        default=10_000,
        help="largest N at which the original's step is measured (beyond: fit)",
    )
    parser.add_argument("--plot", type=Path, default=None, help="write the scaling plot here")
    args = parser.parse_args()

    binary = build_cpp()
    out = subprocess.run([str(binary), str(args.steps)], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    sparse = {r["n"]: r for r in rows if r["mode"] == "sparse"}
    exact = {r["n"]: r for r in rows if r["mode"] == "exact"}

    original: dict[int, tuple[float, bool]] = {}
    for n in sorted(sparse):
        if n <= args.max_original_n:
            seconds = time_original(n, args.original_budget)
            if seconds is not None:
                original[n] = (seconds, False)
    measured = sorted(original)
    if len(measured) >= 2:
        # Quadratic model t = c * n^2 through the largest measured size.
        n0 = measured[-1]
        c = original[n0][0] / n0**2
        for n in sorted(sparse):
            if n not in original:
                original[n] = (c * n * n, True)

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ns = sorted(sparse)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(ns, [sparse[n]["us_per_iter"] for n in ns], "o-", label="icm (C++, sparse MP)")
        if exact:
            ax.loglog(
                sorted(exact),
                [exact[n]["us_per_iter"] for n in sorted(exact)],
                "s-",
                label="icm (C++, exact MP)",
            )
        xs = sorted(original)
        ax.loglog(
            xs,
            [original[n][0] * 1e6 for n in xs],
            "^--",
            label="original's Python bookkeeping\n(hollow: extrapolated)",
        )
        for n in xs:
            if original[n][1]:
                ax.plot(n, original[n][0] * 1e6, "^", mfc="white", color="C2")
        ax.axhline(100, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("claims N")
        ax.set_ylabel("search work per iteration (us), model excluded")
        ax.legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)

    git = git_hash(ROOT, short=True) or "unknown"
    print(f"search_overhead  git {git}  steps {args.steps}  (model time excluded)")
    print(
        f"{'N':>8} {'icm us/iter':>12} {'original us/iter':>18} {'ratio':>10}"
        f"  {'exact us/iter':>13}"
    )
    for n in sorted(sparse):
        ours = sparse[n]["us_per_iter"]
        orig, extrapolated = original.get(n, (float("nan"), False))
        mark = " (extrapolated)" if extrapolated else ""
        ex = f"{exact[n]['us_per_iter']:.1f}" if n in exact else "-"
        print(
            f"{n:>8} {ours:>12.2f} {orig * 1e6:>18.0f} {orig * 1e6 / ours:>10.0f}x {ex:>13}{mark}"
        )
    big = sparse[max(sparse)]
    print(
        f"peak memory of the {max(sparse)}-claim search: {big['peak_rss_kib'] / 1024:.1f} MiB "
        f"(goal < 1024)"
    )
    ns = sorted(sparse)
    growth = sparse[ns[-1]]["us_per_iter"] / sparse[ns[0]]["us_per_iter"]
    print(
        f"growth from N={ns[0]} to N={ns[-1]} ({ns[-1] // ns[0]}x claims): {growth:.2f}x time per "
        f"iteration (goal: under 100 us at 10^5: {big['us_per_iter']:.1f} us)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
