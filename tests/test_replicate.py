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
    # Cells without the imbalance-robust metrics (older cells.jsonl) rank by accuracy.
    assert "| testbed | metric | Golden labels | ICM | ICM, --consistency paper |" in report
    assert "| truthfulqa | accuracy | 65.0 +/- 7.1 | 60.0 +/- 14.1 | 85.0 +/- 7.1 |" in report
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


def test_report_ranks_by_the_metric_imbalance_cannot_fool(tmp_path: Path) -> None:
    """Random labels that predict the majority class had the best accuracy (issue 22:
    random 68.8% > ICM 62.5% > golden 58.3%); ranked by group accuracy (argmax) they come
    last, and the report and figure say which metric they rank by."""

    def cell(method: str, seed: int, acc: float, group: float | None, bal: float) -> Cell:
        details = {
            "balanced_accuracy": bal,
            "group_argmax_accuracy": group,
            "majority_class_rate": 2 / 3,
            "robust_metric": "group_argmax_accuracy" if group is not None else "balanced_accuracy",
        }
        if acc == 0.688:
            details["warnings"] = ["degenerate predictions: every one of the 48 test claims"]
        return Cell("mine", method, seed, acc, (0.0, 1.0), 48, 8, details)

    cells = [
        cell("random", 0, 0.688, 0.38, 0.52),
        cell("icm", 0, 0.625, 0.50, 0.58),
        cell("golden", 0, 0.583, 0.56, 0.60),
        cell("zero-shot", 0, 0.333, 0.56, 0.50),
        cell("random", 1, 0.688, 0.38, 0.52),
        cell("icm", 1, 0.625, 0.50, 0.58),
        cell("golden", 1, 0.583, 0.56, 0.60),
        cell("zero-shot", 1, 0.333, 0.56, 0.50),
    ]
    cfg = ReplicateConfig(testbeds=["mine"], seeds=2, out=tmp_path, run=RunConfig())
    report = write_report(
        cfg, cells, command="icm replicate ...", wall_seconds=60, model="test", date="d"
    ).read_text()
    assert "| mine | group accuracy (argmax) | 56.0 +/- 0.0 | 38.0 +/- 0.0 |" in report
    ranking = next(line for line in report.splitlines() if line.startswith("- mine, by"))
    assert ranking.endswith("ICM 50.0 > Random labels 38.0"), ranking
    assert "| mine | 66.7 | 33.3 +/- 0.0 | 68.8 +/- 0.0 |" in report  # plain accuracy table
    # Without groups, balanced accuracy ranks.
    flat = [cell(c.method, c.seed, c.accuracy, None, c.details["balanced_accuracy"]) for c in cells]
    text = write_report(cfg, flat, command="c", wall_seconds=1, model="m", date="d").read_text()
    assert "| mine | balanced accuracy |" in text and "Random labels 52.0 > Zero-shot 50.0" in text
    assert plot_report(cfg, cells).stat().st_size > 5000


def test_replicate_on_a_claims_file_needs_and_uses_a_held_out_fraction(tmp_path: Path) -> None:
    """A claims file has no test split: replicate refuses it without --test-fraction, and
    with it ICM labels only the groups the evaluation does not hold out."""
    from icm.errors import ConfigError
    from icm.evaluate import EvalConfig, load_split
    from icm.replicate import run_replicate
    from icm.run import load_run_table

    path = Path(__file__).resolve().parents[1] / "examples" / "custom_claims.jsonl"
    with pytest.raises(ConfigError, match="--test-fraction F"):
        run_replicate(ReplicateConfig(testbeds=[str(path)], out=tmp_path, run=RunConfig()))
    run_table = load_run_table(
        RunConfig(testbed=str(path), size=None, test_fraction=0.4, test_fraction_seed=1)
    )
    ecfg = EvalConfig(testbed=str(path), test_fraction=0.4, seed=1)
    whole = load_split(ecfg, str(path), "train", None)
    _, test = whole.split_groups(0.4, 1)
    assert run_table.ids and test.ids
    assert not set(run_table.ids) & set(test.ids)
    assert len(run_table) + len(test) == len(whole)  # the whole file, split by whole groups


@pytest.mark.model
def test_replicate_on_a_claims_file_with_the_real_model(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    path = Path(__file__).resolve().parents[1] / "examples" / "custom_claims.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "replicate", "--testbeds", str(path),
         "--test-fraction", "0.4", "--seeds", "1", "--train-size", "8", "--K", "20",
         "--cache", str(tmp_path / "c.sqlite"), "--out", str(out)],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cells = [json.loads(x) for x in (out / "cells.jsonl").read_text().splitlines()]
    assert {c["method"] for c in cells} >= {"icm", "golden", "random", "zero-shot"}
    assert all(c["details"]["test_fraction"] == 0.4 for c in cells)
    assert (
        "balanced accuracy" in (out / "report.md").read_text()
        or "group accuracy" in (out / "report.md").read_text()
    )
    # The runs live under OUT/runs (an absolute testbed path once put them beside the file).
    config = json.loads((out / "runs" / "custom_claims-icm-seed0" / "config.json").read_text())
    assert config["config"]["test_fraction"] == 0.4
    assert not list(path.parent.glob("custom_claims.jsonl-*"))


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
