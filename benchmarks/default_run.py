"""default_run: the README's run command, end to end (server start and model load
included), timed over repeats with a fresh response cache each time.

    uv run python benchmarks/default_run.py [--repeats 3]

Goal (issue 3): under 5 minutes on a 2-core machine. Figures are printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from icm.run_dir import git_hash

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    walls, rows = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "ICM_CACHE_DIR": tmp}  # a cold response cache
            out = Path(tmp) / "run"
            start = time.monotonic()
            # The README's command is `uv run icm run`; --out only fixes where it writes.
            r = subprocess.run(
                ["uv", "run", "icm", "run", "--out", str(out), "--quiet"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.monotonic() - start
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
            m = json.loads((out / "metrics.json").read_text())
            walls.append(wall)
            rows.append(m)
            print(
                f"  run {i}: {wall:.1f} s, {m['backend']['requests']} model requests, "
                f"agreement with gold {m['agreement_with_gold']}",
                file=sys.stderr,
                flush=True,
            )
    git = git_hash(ROOT, short=True) or "unknown"
    print(f"default_run  git {git}  repeats {args.repeats}")
    print(
        f"`uv run icm run` wall time: mean {statistics.mean(walls):.1f} s, "
        f"min {min(walls):.1f} s, max {max(walls):.1f} s (goal: under 300 s)"
    )
    print(f"model requests per run: {statistics.mean(r['backend']['requests'] for r in rows):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
