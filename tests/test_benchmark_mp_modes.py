"""benchmarks/mp_modes.py with the real embedded model, at a toy size: the figures it prints
are the run directories' own counts, and `--work` reuses finished runs instead of redoing
them or mixing runs of other settings into one table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model  # the benchmark runs the embedded model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mp_modes.py"
ARGS = [
    "--size", "4", "--K", "4", "--seeds", "1", "--context-k", "2", "--alpha", "1",
    "--synthetic-n", "12", "--synthetic-K", "10", "--synthetic-k", "3",
]  # fmt: skip


def mp_modes(work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS, "--work", str(work), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("mp_modes")
    done = mp_modes(work)
    assert done.returncode == 0, done.stderr
    return work, done.stdout


def metrics(work: Path, name: str) -> dict:
    return json.loads((work / name / "metrics.json").read_text())


def test_the_printed_figures_are_the_run_directories_counts(first_run: tuple[Path, str]) -> None:
    work, out = first_run
    assert sorted(p.name for p in work.iterdir()) == ["exact-seed0", "sparse-k2-seed0"]
    exact, sparse = metrics(work, "exact-seed0"), metrics(work, "sparse-k2-seed0")
    assert exact["status"] == sparse["status"] == "completed"
    exact_tokens = exact["backend"]["prompt_tokens"]
    sparse_tokens = sparse["backend"]["prompt_tokens"]
    assert exact_tokens > 0 and sparse_tokens > 0  # the server really counted them

    row = re.compile(r"^(exact|sparse k=2) +(\d+) +(\d+) +\d+ +([\d.]+)%", re.M)
    rows = {m.group(1): m.groups() for m in row.finditer(out)}
    assert int(rows["exact"][1]) == exact_tokens
    assert int(rows["exact"][2]) == exact["backend"]["requests"]
    assert float(rows["exact"][3]) == pytest.approx(100 * exact["agreement_with_gold"], abs=0.05)
    assert int(rows["sparse k=2"][1]) == sparse_tokens
    assert float(rows["sparse k=2"][3]) == pytest.approx(
        100 * sparse["agreement_with_gold"], abs=0.05
    )
    ratio = re.search(
        r"^exact/sparse k=2: ([\d.]+)x prompt tokens.*: ([+-][\d.]+) points",
        out,
        re.M,
    )
    assert ratio is not None, out
    assert float(ratio.group(1)) == pytest.approx(exact_tokens / sparse_tokens, abs=0.05)
    diff = 100 * (sparse["agreement_with_gold"] - exact["agreement_with_gold"])
    assert float(ratio.group(2)) == pytest.approx(diff, abs=0.05)
    assert "resumed runs" not in out


def test_the_same_command_again_reuses_the_finished_runs(first_run: tuple[Path, str]) -> None:
    work, out = first_run
    before = {p.name: (p / "metrics.json").read_bytes() for p in work.iterdir()}
    again = mp_modes(work)
    assert again.returncode == 0, again.stderr
    assert {p.name: (p / "metrics.json").read_bytes() for p in work.iterdir()} == before
    # The same runs give the same table (the synthetic part is deterministic too).
    assert again.stdout == out


def test_other_settings_in_the_same_work_folder_are_refused(first_run: tuple[Path, str]) -> None:
    work, _ = first_run
    before = {p.name: (p / "metrics.json").read_bytes() for p in work.iterdir()}
    other = mp_modes(work, "--alpha", "2")
    assert other.returncode != 0
    assert "holds a run with other settings (alpha 1.0 there, 2.0 here)" in other.stderr
    assert {p.name: (p / "metrics.json").read_bytes() for p in work.iterdir()} == before
