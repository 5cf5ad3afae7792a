"""icm replicate end to end on the real embedded model (small), and its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icm.config import RunConfig
from icm.replicate import Cell, ReplicateConfig, summarize
from icm.report.replicate_report import plot_report, write_report


def test_report_table_and_figure_from_cells(tmp_path: Path) -> None:
    cells = [
        Cell("truthfulqa", m, s, acc, (acc - 0.1, acc + 0.1), 40, 8, {})
        for s, (m, acc) in enumerate(
            [
                ("golden", 0.6),
                ("golden", 0.7),
                ("icm", 0.5),
                ("icm", 0.7),
                ("icm-paper-consistency", 0.9),
                ("icm-paper-consistency", 0.8),
            ]
        )
    ]
    summary = summarize(cells)
    assert summary[("truthfulqa", "golden")][:2] == pytest.approx((65.0, 7.0710678), rel=1e-6)
    cfg = ReplicateConfig(testbeds=["truthfulqa"], seeds=2, out=tmp_path, run=RunConfig())
    report = write_report(
        cfg, cells, command="icm replicate ...", wall_seconds=60, model="test", date="2026-11-29"
    ).read_text()
    assert "| testbed | Golden labels | ICM | ICM, --consistency paper |" in report
    assert "| truthfulqa | 65.0 +/- 7.1 | 60.0 +/- 14.1 | 85.0 +/- 7.1 |" in report
    assert "Llama 3.1 70B | 60.0 | 74.0 | 92.0 | 91.0" in report  # the paper's numbers
    assert "gold-derived consistency keys" in report and "+25.0 points" in report
    assert "leaking into the objective" in report  # 25 points > the seeds' spread (14.1)

    # A gap inside the spread over seeds is not read as the leak's effect.
    noisy = [
        Cell("truthfulqa", m, s, acc, (0.0, 1.0), 40, 8, {})
        for s, (m, acc) in enumerate(
            [("icm", 0.40), ("icm", 0.50), ("icm-paper-consistency", 0.42),
             ("icm-paper-consistency", 0.58)]
        )
    ]  # fmt: skip
    text = write_report(
        cfg, noisy, command="icm replicate ...", wall_seconds=60, model="test", date="d"
    ).read_text()
    assert "+5.0 points, no larger than the spread over seeds (std up to 11.3)" in text
    assert "leaking into the objective" not in text
    assert "Warnings" not in text  # no cell carries one
    assert plot_report(cfg, cells).stat().st_size > 5000

    # A mean can look fine while a seed behind it is degenerate: the report lists it.
    flagged = [*noisy[:1], Cell("truthfulqa", "icm", 1, 0.5, (0.0, 1.0), 40, 8, {"warnings": [
        "the ICM run's labels are degenerate (its summary: ...)"]})]  # fmt: skip
    text = write_report(
        cfg, flagged, command="icm replicate ...", wall_seconds=60, model="test", date="d"
    ).read_text()
    assert "## Warnings (1)" in text
    assert "- truthfulqa / ICM / seed 1: the ICM run's labels are degenerate" in text


@pytest.mark.model
def test_replicate_small_real_run(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "icm.cli",
            "replicate",
            "--testbeds",
            "capitals",
            "--seeds",
            "2",
            "--train-size",
            "8",
            "--test-size",
            "8",
            "--K",
            "20",
            "--cache",
            "off",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    report = (out / "report.md").read_text()
    for method in ("Zero-shot", "Random labels", "Bootstrap", "Golden labels", "ICM"):
        assert method in report
    cells = [json.loads(x) for x in (out / "cells.jsonl").read_text().splitlines()]
    assert {c["method"] for c in cells} >= {
        "icm",
        "golden",
        "random",
        "random-matched",
        "zero-shot",
        "bootstrap",
    }
    assert {c["seed"] for c in cells} == {0, 1}
    assert all(0 <= c["accuracy"] <= 1 and c["n_test"] == 8 for c in cells)
    assert (out / "figure.png").stat().st_size > 5000
    warned = [w for c in cells for w in c["details"]["warnings"]]
    assert ("## Warnings" in report) == bool(warned)
    assert all(w in report for w in warned[:30])

    # The real model's labels export as training data (SFT JSONL, read back).
    run_dir = out / "runs" / "capitals-icm-seed0"
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "export", str(run_dir), "--format", "sft"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    sft = [json.loads(x) for x in (run_dir / "export" / "sft.jsonl").read_text().splitlines()]
    labels = [json.loads(x) for x in (run_dir / "labels.jsonl").read_text().splitlines()]
    assert [(s["id"], s["completion"]) for s in sft] == [
        (lab["id"], "True" if lab["label"] else "False") for lab in labels
    ]
