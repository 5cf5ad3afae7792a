"""One reader of a finished run directory (icm.run_dir.read_finished_run) behind export,
finetune, eval --labels and analyze: the same checks and the same one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icm.errors import DataError
from icm.evaluate import labels_from_run
from icm.export import load_run
from icm.run_dir import read_finished_run

ICM = [sys.executable, "-m", "icm.cli"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    r = subprocess.run(
        [*ICM, "run", "--model", "synthetic", "--K", "100", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return out


def test_a_finished_run_reads_back(run: Path) -> None:
    finished = read_finished_run(run)
    assert (finished.testbed, finished.split, finished.model) == ("capitals", "train", "synthetic")
    assert len(finished.all_rows) == 16 and finished.label_words == ("True", "False")
    assert finished.labels == {r["id"]: r["label"] for r in finished.all_rows}
    table, labels, info = labels_from_run(run)
    assert len(table) == 16 and labels == finished.labels
    assert (
        info["icm_agreement_with_gold"]
        == json.loads((run / "metrics.json").read_text())["agreement_with_gold"]
    )
    assert load_run(run).rows == finished.rows


def damaged_copy(run: Path, tmp_path: Path, lines: list[str]) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "metrics.json"):
        (copy / name).write_text((run / name).read_text())
    (copy / "labels.jsonl").write_text("".join(lines))
    return copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ls: ls[:10], r"labels\.jsonl: holds 10 claims, but the run has 16"),
        (lambda ls: [*ls[:15], ls[0]], r"labels\.jsonl:16: field 'id': claim .* appears twice"),
        (
            lambda ls: [ls[0].replace('"label": ', '"label": "yes", "x": '), *ls[1:]],
            r"labels\.jsonl:1: field 'label': expected true, false or null",
        ),
    ],
)
def test_every_reader_refuses_a_damaged_labels_file(run, tmp_path, damage, message) -> None:
    lines = (run / "labels.jsonl").read_text().splitlines(keepends=True)
    copy = damaged_copy(run, tmp_path, damage(lines))
    for reader in (read_finished_run, load_run, labels_from_run):
        with pytest.raises(DataError, match=message):
            reader(copy)


def flagged_copy(run: Path, tmp_path: Path, verdict: str, warnings: list[str]) -> Path:
    """The run as it would be had its own end-of-run summary flagged it."""
    copy = tmp_path / "flagged"
    copy.mkdir()
    for name in ("config.json", "labels.jsonl"):
        (copy / name).write_text((run / name).read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    (copy / "metrics.json").write_text(
        json.dumps({**metrics, "verdict": verdict, "warnings": warnings})
    )
    return copy


def test_commands_that_use_a_flagged_runs_labels_say_so(run: Path, tmp_path: Path) -> None:
    """export, finetune (eval and analyze: their own tests) repeat the run's verdict when
    its summary flagged the labelling, and say nothing of a run that ended well."""
    assert read_finished_run(run).verdict == "ok"
    assert read_finished_run(run).quality_warning() is None
    r = subprocess.run(
        [*ICM, "export", str(run), "--format", "sft", "--out", str(tmp_path / "ok.jsonl")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr

    flagged = flagged_copy(
        run,
        tmp_path,
        "degenerate+inconsistent",
        ["degenerate: all 16 labels are True; the labelling carries no information", "x"],
    )
    expected = (
        f"WARNING: {flagged}: the run's labelling ended degenerate+inconsistent "
        "(degenerate: all 16 labels are True)"
    )
    r = subprocess.run(
        [*ICM, "export", str(flagged), "--format", "sft", "--out", str(tmp_path / "x.jsonl")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and expected in r.stderr.splitlines(), r.stderr
    assert json.loads(r.stdout)["warning"] == expected.removeprefix("WARNING: ")
    # finetune warns before it trains (here it then stops: the base model does not exist).
    r = subprocess.run(
        [*ICM, "finetune", str(flagged), "--out", str(tmp_path / "ft"),
         "--base", str(tmp_path / "none")],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert f"{expected}; the model will learn that labelling" in r.stderr.splitlines(), r.stderr


def test_the_repeated_verdict_quotes_the_warning_behind_it(run: Path, tmp_path: Path) -> None:
    """A below-zero-shot verdict comes after other warnings (a violated constraint): the
    line repeated by eval, export and finetune quotes the one that made the verdict."""
    flagged = flagged_copy(
        run,
        tmp_path,
        "below-zero-shot",
        [
            "some constraints violated: 1 of 8",
            "below-zero-shot: ICM does worse than asking the model directly (zero-shot): 6 "
            "vs 7 of 8 groups right; they differ on 1 group(s)",
        ],
    )
    warning = read_finished_run(flagged).quality_warning()
    assert warning == (
        f"{flagged}: the run's labelling ended below-zero-shot (below-zero-shot: ICM does "
        "worse than asking the model directly (zero-shot): 6 vs 7 of 8 groups right)"
    )
