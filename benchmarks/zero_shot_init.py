"""ICM from random seed labels vs ICM started from the zero-shot labels vs zero-shot alone.

For each testbed and seed, two `icm run`s that differ only in --init (random, the paper;
zero-shot, beyond the paper), each with the zero-shot reference on, so that every run's
metrics.json holds ICM's and zero-shot's right answers per claim and per group. Finished
runs in --work are reused, so the same command continues an interrupted experiment.

    uv run python benchmarks/zero_shot_init.py --work /tmp/zsi \
        --out docs/results/zero-shot-init

prints a markdown table and writes OUT/runs.jsonl (one row per run) and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TESTBEDS = ["capitals", "arithmetic", "comparison", "examples/custom_claims.jsonl"]
INITS = ("random", "zero-shot")


def run_dir(work: Path, testbed: str, seed: int, init: str) -> Path:
    return work / f"{Path(testbed).stem}-seed{seed}-{init}"


def ensure_run(work: Path, testbed: str, seed: int, init: str, extra: list[str]) -> dict[str, Any]:
    out = run_dir(work, testbed, seed, init)
    metrics = out / "metrics.json"
    if metrics.exists() and json.loads(metrics.read_text()).get("status") == "completed":
        return json.loads(metrics.read_text())
    if (out / "config.json").exists():
        cmd = ["icm", "run", "--resume", str(out), "--quiet"]
    else:
        cmd = ["icm", "run", "--testbed", testbed, "--seed", str(seed), "--init", init]
        cmd += ["--quiet", "--out", str(out), *extra]
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(
        f"# {testbed} seed {seed} init {init}: {time.monotonic() - started:.0f}s",
        file=sys.stderr,
        flush=True,
    )
    return json.loads(metrics.read_text())


def row_of(testbed: str, seed: int, init: str, m: dict[str, Any]) -> dict[str, Any]:
    zs = m["zero_shot"]
    claims, groups = zs["per_claim"], zs["per_group"]
    return {
        "testbed": testbed,
        "seed": seed,
        "init": init,
        "n_claims": claims["n"],
        "n_groups": groups["n"] if groups else 0,
        "icm_claims": claims["icm"],
        "icm_groups": groups["icm"] if groups else None,
        # The reference at ICM's label balance, and the sign of the gap (independent of ICM)
        "zero_shot_claims": claims["zero_shot"],
        "zero_shot_sign_claims": claims["zero_shot_sign"],
        "zero_shot_groups": groups["zero_shot"] if groups else None,
        "zero_shot_sign_groups": groups["zero_shot_sign"] if groups else None,
        "majority_claims": claims["majority_class"],
        "verdict": m["verdict"],
        "inconsistencies": m["inconsistencies"],
        "wall_seconds": m["wall_seconds"],
        "requests": m["backend"].get("requests"),
    }


def pct(k: float, n: int) -> str:
    return f"{100 * k / n:.1f}" if n else "-"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| testbed | seed | claims / groups | ICM random init: claims, groups right | "
        "ICM zero-shot init: claims, groups | zero-shot alone (sign of gap): claims, groups | "
        "verdict random / zero-shot init |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["testbed"], r["seed"], r["init"]): r for r in rows}
    for testbed in dict.fromkeys(r["testbed"] for r in rows):
        sums: dict[str, list[float]] = {}
        seeds = sorted({r["seed"] for r in rows if r["testbed"] == testbed})
        for seed in seeds:
            ri, zi = by_key.get((testbed, seed, "random")), by_key.get((testbed, seed, "zero-shot"))
            if ri is None or zi is None:
                continue
            n, g = ri["n_claims"], ri["n_groups"]

            def both(r: dict[str, Any], c: str, gr: str, n: int = n, g: int = g) -> str:
                groups = f", {r[gr]}/{g}" if g else ""
                return f"{r[c]}/{n}{groups}"

            lines.append(
                f"| {testbed} | {seed} | {n} / {g} | {both(ri, 'icm_claims', 'icm_groups')} | "
                f"{both(zi, 'icm_claims', 'icm_groups')} | "
                f"{both(ri, 'zero_shot_sign_claims', 'zero_shot_sign_groups')} | "
                f"{ri['verdict']} / {zi['verdict']} |"
            )
            for name, value in (
                ("icm_random", 100 * ri["icm_claims"] / n),
                ("icm_zero_shot_init", 100 * zi["icm_claims"] / n),
                ("zero_shot", 100 * ri["zero_shot_sign_claims"] / n),
                ("icm_random_g", 100 * ri["icm_groups"] / g if g else float("nan")),
                ("icm_zero_shot_init_g", 100 * zi["icm_groups"] / g if g else float("nan")),
                ("zero_shot_g", 100 * ri["zero_shot_sign_groups"] / g if g else float("nan")),
            ):
                sums.setdefault(name, []).append(value)
        if sums:

            def mean(name: str, sums: dict[str, list[float]] = sums) -> str:
                return f"{statistics.mean(sums[name]):.1f}%"

            lines.append(
                f"| **{testbed}** | mean | | {mean('icm_random')}, {mean('icm_random_g')} | "
                f"{mean('icm_zero_shot_init')}, {mean('icm_zero_shot_init_g')} | "
                f"{mean('zero_shot')}, {mean('zero_shot_g')} | |"
            )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the run directories")
    p.add_argument("--out", type=Path, default=None, help="write runs.jsonl and table.md here")
    p.add_argument("--testbeds", nargs="+", default=DEFAULT_TESTBEDS)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="more `icm run` flags, after --")
    args = p.parse_args()
    extra = [a for a in args.extra if a != "--"]
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for testbed in args.testbeds:
        for seed in range(args.seeds):
            for init in INITS:
                rows.append(
                    row_of(testbed, seed, init, ensure_run(args.work, testbed, seed, init, extra))
                )
    lines = table(rows)
    print("\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (args.out / "table.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
