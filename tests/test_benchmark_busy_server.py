"""benchmarks/busy_server.py at a toy size against its simulated server: every table is
printed and every configuration of a mode ends with the same labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "busy_server.py"


def test_busy_server_prints_its_tables_with_the_same_labels_in_every_row() -> None:
    args = [
        "--claims", "16", "--K", "30", "--batches", "2", "--depths", "0,3",
        "--exact-claims", "8", "--exact-K", "12", "--exact-depths", "0,2,2/1/f",
        "--latency-ms", "1", "--per-token-ms", "0", "--concurrency", "8",
    ]  # fmt: skip
    r = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("same labels in every row: yes") == 3, r.stdout
    assert "2 batches at once / one batch:" in r.stdout
    assert "sparse, 1 batch, prefetch 3" in r.stdout and "exact, 1 batch, prefetch 2" in r.stdout
    assert "exact, 1 batch, prefetch 2, call limit 1, fill: wall / needed work" in r.stdout
