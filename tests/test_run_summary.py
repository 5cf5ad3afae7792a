"""Every run ends with a summary that says when its labelling is degenerate (one label for
every claim) or inconsistent, with the flag that may help; so does icm.api.label."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from icm.api import claims_table, label
from icm.backends.base import LabelScorer
from icm.config import RunConfig, balanced_alpha
from icm.run_summary import summarize
from icm.testbeds import LoadOptions
from icm.testbeds.loading import load_table


def capitals() -> object:
    return load_table("capitals", "train", LoadOptions(size=16, seed=1))


def test_balanced_alpha_is_the_papers_weight_per_claim() -> None:
    assert balanced_alpha(256) == 30.0
    assert balanced_alpha(16) == pytest.approx(1.875)
    # The default alpha of a run is that balance for its batch; --alpha is used as given.
    assert RunConfig().resolved_alpha(16) == pytest.approx(1.875)
    assert RunConfig(alpha=30.0).resolved_alpha(16) == 30.0
    assert RunConfig(mp_objective="sum-logprob").resolved_alpha(16) == 30.0


def test_all_one_label_is_called_degenerate_and_names_the_balanced_alpha() -> None:
    table = capitals()
    labels = {c.id: True for c in table.claims}
    s = summarize(table, labels, alpha=30.0, n_batch=16)
    assert (s.n_true, s.n_false, s.constraints_violated) == (16, 0, 8)
    assert s.verdict == "degenerate+inconsistent"
    assert s.warnings[0].startswith("degenerate: all 16 labels are True")
    assert "--alpha 1.875" in s.warnings[0]
    assert s.warnings[1].startswith("inconsistent: 8 of 8")
    assert any(line.startswith("WARNING: degenerate") for line in s.lines())


def test_gold_like_labels_are_ok_and_a_few_violations_are_counted() -> None:
    table = capitals()
    labels = {c.id: bool(c.gold) for c in table.claims}
    s = summarize(table, labels, alpha=1.875, n_batch=16)
    assert s.verdict == "ok" and s.warnings == []
    assert (s.n_true, s.n_false, s.constraints_violated) == (8, 8, 0)
    flipped = table.claims[0]
    labels[flipped.id] = not labels[flipped.id]
    s = summarize(table, labels, alpha=1.875, n_batch=16)
    assert s.verdict == "ok" and s.constraints_violated == 1
    assert s.warnings == ["some constraints violated: 1 of 8"]
    # With alpha already balanced, the remedy is not "lower alpha".
    all_false = summarize(table, dict.fromkeys(labels, False), alpha=1.875, n_batch=16)
    assert "larger model" in all_false.warnings[0] and "--alpha" not in all_false.warnings[0]


def test_unlabeled_claims_are_reported() -> None:
    table = capitals()
    labels: dict[str, bool | None] = {c.id: bool(c.gold) for c in table.claims}
    labels[table.claims[0].id] = None
    s = summarize(table, labels)
    assert s.n_labeled == 15
    assert any(w.startswith("unlabeled: 1 of 16") for w in s.warnings)


class AlwaysTrue(LabelScorer):
    """Puts all its mass on the true word: the degenerate extreme of a small model."""

    model_id = "always-true"

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        return [(-0.01, -5.0) for _ in prompts]


def test_api_label_warns_about_a_degenerate_labelling() -> None:
    claims = [
        {"id": f"{q}{k}", "prompt": f"Claim {q}{k}. I think this claim is", "group": q}
        for q in "abcd"
        for k in (1, 2)
    ]
    table = claims_table(claims, [("opposite", f"{q}1", f"{q}2") for q in "abcd"])
    with pytest.warns(RuntimeWarning, match="degenerate: all 8 labels are True"):
        result = label(table, AlwaysTrue(), K=40, num_seed=2, alpha=30.0)
    assert result.summary is not None and result.summary.verdict.startswith("degenerate")


def test_api_label_refuses_options_it_would_ignore() -> None:
    table = claims_table([{"id": "a", "prompt": "A is"}])
    for option in ("testbed", "out", "data_dir"):
        with pytest.raises(Exception, match=f"option '{option}' does not apply"):
            label(table, "synthetic", **{option: "x"})


def icm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_quiet_synthetic_run_prints_the_summary(tmp_path: Path) -> None:
    r = icm("run", "--model", "synthetic", "--K", "200", "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "icm: summary: 16/16 labeled" in r.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["summary"]["constraints_total"] == 8
    assert metrics["verdict"] == "ok" and metrics["alpha"] == pytest.approx(1.875)


@pytest.mark.model
def test_the_original_alpha_on_the_default_run_is_flagged_and_the_default_is_not(
    tmp_path: Path,
) -> None:
    """The embedded 270M model with alpha 30 on 16 claims ends all True (measured); the
    run must say so. The default alpha (1.875 here) must not end degenerate."""
    cache = str(tmp_path / "cache.sqlite")
    r = icm("run", "--alpha", "30", "--cache", cache, "--out", str(tmp_path / "a30"), "--quiet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "a30" / "metrics.json").read_text())
    assert metrics["verdict"].startswith("degenerate"), metrics["summary"]
    assert "icm: WARNING: degenerate: all 16 labels are" in r.stderr
    assert "--alpha 1.875 keeps the paper's balance" in r.stderr
    log = (tmp_path / "a30" / "log.txt").read_text()
    assert "completed (degenerate" in log

    r = icm("run", "--cache", cache, "--out", str(tmp_path / "default"), "--quiet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "default" / "metrics.json").read_text())
    assert "icm: summary: 16/16 labeled" in r.stderr
    summary = metrics["summary"]
    assert 0 < summary["n_true"] < 16, summary
    assert not metrics["verdict"].startswith("degenerate")
