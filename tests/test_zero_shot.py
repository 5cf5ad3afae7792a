"""The zero-shot reference (icm.zero_shot): the structure's labelling rule, the comparison
with ICM beside majority class and chance, the verdict it adds, and the floored-score stop.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from icm.backends.base import FLOORED_LOGPROB, FloorWatch, ScoresFloored
from icm.run_summary import summarize
from icm.testbeds.base import ClaimRecord, ClaimTable, GroupConstraintRecord, RelationRecord
from icm.zero_shot import (
    consistent_labellings,
    exclusive_sets,
    sign_test_p,
    zero_shot_labels,
)


def exactly_one_true(ids: list[str]) -> tuple[list[RelationRecord], GroupConstraintRecord]:
    """Pairwise at most one true, and at least one: how a testbed says "exactly one" (the
    testbeds do it through ClaimTableBuilder.add_group; these tests build tables by hand)."""
    pairs = [
        RelationRecord("at_most_one_true", a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]
    ]
    return pairs, GroupConstraintRecord("at_least_one_true", tuple(ids))


def icm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args], capture_output=True, text=True, timeout=900
    )


def questions(n: int, k: int) -> ClaimTable:
    """n questions with k candidate answers each, the first one true, exactly one true."""
    claims, relations, groups = [], [], []
    for q in range(n):
        ids = [f"q{q}-{a}" for a in range(k)]
        claims += [ClaimRecord(i, f"Q{q} answer {i}? ", f"q{q}", a == 0) for a, i in enumerate(ids)]
        pairs, group = exactly_one_true(ids)
        relations += pairs
        groups.append(group)
    return ClaimTable("t", "all", claims, relations, group_constraints=groups)


def test_exclusive_sets_follow_the_relations() -> None:
    table = ClaimTable(
        "t",
        "all",
        [ClaimRecord(i, i) for i in ["a", "b", "c", "p", "q", "x", "y", "z", "free"]],
        [
            *exactly_one_true(["a", "b", "c"])[0],
            RelationRecord("opposite", "p", "q"),
            RelationRecord("at_most_one_true", "x", "y"),
            RelationRecord("at_most_one_true", "y", "z"),
            RelationRecord("at_most_one_true", "x", "z"),
        ],
        group_constraints=[exactly_one_true(["a", "b", "c"])[1]],
    )
    sets = {(s.members, s.exactly_one) for s in exclusive_sets(table)}
    assert sets == {(("a", "b", "c"), True), (("p", "q"), True), (("x", "y", "z"), False)}


def test_labels_by_group_argmax_and_by_threshold() -> None:
    table = ClaimTable(
        "t",
        "all",
        [ClaimRecord(i, i) for i in ["a", "b", "x", "y", "f1", "f2", "f3"]],
        [
            RelationRecord("opposite", "a", "b"),
            RelationRecord("at_most_one_true", "x", "y"),
        ],
    )
    gaps = {"a": -3.0, "b": -1.0, "x": 2.0, "y": 1.0, "f1": 0.5, "f2": -0.2, "f3": -2.0}
    sign = zero_shot_labels(table, gaps)
    # An exactly-one pair takes its argmax even when both gaps are negative; an
    # at-most-one set offers only its best claim to the threshold.
    assert sign.labels == {
        "a": False, "b": True, "x": True, "y": False, "f1": True, "f2": False, "f3": False
    }  # fmt: skip
    assert sign.threshold == 0 and sign.n_thresholded == 4
    # ICM's balance among the thresholded claims: 3 True -> the 3 largest candidate gaps.
    icm = {"a": True, "b": False, "x": False, "y": True, "f1": True, "f2": True, "f3": False}
    matched = zero_shot_labels(table, gaps, match_labels=icm)
    assert [k for k in ("x", "y", "f1", "f2", "f3") if matched.labels[k]] == ["x", "f1", "f2"]
    assert matched.threshold == -0.2


def test_the_issue_case_is_flagged_below_zero_shot_with_the_numbers_that_decide_it() -> None:
    """55 questions x 3 answers: ICM right on 19 groups, zero-shot on 32 (issue 22); the
    run said 'verdict ok'."""
    table = questions(55, 3)
    gaps, icm_labels = {}, {}
    for q in range(55):
        zs_right, icm_right = q < 32, q < 6 or q >= 42  # overlap on 6 groups
        for a in range(3):
            cid = f"q{q}-{a}"
            gaps[cid] = (1.0 if (a == 0) == zs_right else 0.0) + 0.1 * (a == 1)
            icm_labels[cid] = a == (0 if icm_right else 2)
    summary = summarize(table, icm_labels, zero_shot_gaps=gaps)
    c = summary.zero_shot
    assert c is not None and c.groups is not None and c.claims is not None
    assert (c.groups.n, c.groups.icm, c.groups.zero_shot) == (55, 19, 32)
    assert c.groups.chance == pytest.approx(55 / 3)  # exactly one of three: 1/3 per group
    assert c.groups.majority == 0  # all False breaks every group
    assert c.decisive is c.groups and c.beats_zero_shot is False
    assert (c.groups.icm_only, c.groups.zero_shot_only) == (13, 26)
    assert c.groups.p_value == pytest.approx(sign_test_p(13, 26))
    assert summary.verdict == "below-zero-shot"
    warning = next(w for w in summary.warnings if w.startswith("below-zero-shot"))
    assert "19 vs 32 of 55 groups" in warning and "zero-shot right on 26, ICM on 13" in warning
    text = "\n".join(summary.lines())
    assert "groups right: ICM 19/55 (34.5%) | zero-shot 32/55 (58.2%)" in text
    assert "chance 18.3/55" in text and "majority class 0/55" in text


def test_icm_beating_zero_shot_is_said_with_its_margin_and_no_warning() -> None:
    table = questions(10, 2)
    gaps = {c.id: (1.0 if c.id.endswith("-1") else 0.0) for c in table.claims}  # all wrong
    gaps["q0-0"] = 2.0  # zero-shot right on one question
    icm_labels = {c.id: bool(c.gold) for c in table.claims}
    summary = summarize(table, icm_labels, zero_shot_gaps=gaps)
    assert summary.verdict == "ok"
    line = next(x for x in summary.lines() if x.startswith("ICM vs zero-shot"))
    assert "ICM beats it, 10 vs 1 of 10 groups" in line and "p = 0.00391" in line


def test_a_tie_below_perfect_is_flagged_and_a_perfect_tie_is_not() -> None:
    table = questions(4, 2)
    gold = {c.id: bool(c.gold) for c in table.claims}
    right = {c.id: 1.0 if c.gold else 0.0 for c in table.claims}
    assert summarize(table, gold, zero_shot_gaps=right).verdict == "ok"
    wrong_first = dict(right, **{"q0-0": 0.0, "q0-1": 1.0})
    icm_wrong_first = dict(gold, **{"q0-0": False, "q0-1": True})
    tie = summarize(table, icm_wrong_first, zero_shot_gaps=wrong_first)
    assert tie.verdict == "below-zero-shot" and "ties with" in tie.warnings[-1]


def test_without_gold_only_agreement_is_shown() -> None:
    table = questions(3, 2)
    table = ClaimTable(
        "t",
        "all",
        [ClaimRecord(c.id, c.prompt, c.group) for c in table.claims],
        table.relations,
        group_constraints=table.group_constraints,
    )
    gaps = {c.id: float(c.id.endswith("-0")) for c in table.claims}
    summary = summarize(
        table, {c.id: c.id.endswith("-1") for c in table.claims}, zero_shot_gaps=gaps
    )
    assert summary.verdict == "ok"
    assert any("agrees with ICM on 0/6 claims, 0/3 groups" in x for x in summary.lines())
    assert any("only the agreement" in x for x in summary.lines())


def test_icm_no_better_than_the_majority_class_is_flagged() -> None:
    """Claims without structure, 3 of 4 False: ICM labelling by a coin that gets 2 of 4
    right is below the majority class (3 of 4)."""
    golds = [True, False, False, False]
    table = ClaimTable("t", "all", [ClaimRecord(f"c{i}", "p", "", g) for i, g in enumerate(golds)])
    gaps = {"c0": 1.0, "c1": -1.0, "c2": -1.0, "c3": 0.5}
    icm_labels = {"c0": False, "c1": False, "c2": False, "c3": True}
    summary = summarize(table, icm_labels, zero_shot_gaps=gaps)
    assert "below-baseline" in summary.verdict
    assert any("no more than the majority class (3)" in w for w in summary.warnings)


def test_chance_counts_the_consistent_labellings_of_a_group() -> None:
    table = questions(1, 4)
    assert consistent_labellings(table, [c.id for c in table.claims]) == 4
    free = ClaimTable("t", "all", [ClaimRecord(i, i, "g") for i in "abc"])
    assert consistent_labellings(free, ["a", "b", "c"]) == 8


def test_sign_test_is_exact() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 5) == pytest.approx(2 / 32)
    assert sign_test_p(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test_p(3, 3) == 1.0


def test_floor_watch_stops_when_most_first_answers_have_neither_word() -> None:
    watch = FloorWatch(("True", "False"), "add --no-keep-trailing-space")
    floored = (FLOORED_LOGPROB, FLOORED_LOGPROB)
    watch.observe([floored] * 8 + [(-1.0, -2.0)] * 7)  # 15 answers: not checked yet
    with pytest.raises(ScoresFloored, match=r"in 9 of its first 16 answers.*no-keep-trailing"):
        watch.observe([floored])
    ok = FloorWatch(("True", "False"))
    ok.observe([floored] * 8 + [(-1.0, FLOORED_LOGPROB)] * 8)  # half floored: the search sees
    ok.observe([floored] * 100)  # checked once, on the first answers only
    assert ok.as_dict() == {
        "answers": 116, "neither_label_word": 108, "no_true_word": 0, "no_false_word": 8
    }  # fmt: skip
    line = ok.line()
    assert line is not None and "108 of 116 answers had neither" in line
    small = FloorWatch(("Yes", "No"))
    small.observe([floored] * 3)
    with pytest.raises(ScoresFloored, match="neither 'Yes' nor 'No'"):
        small.check()


def test_floored_is_exactly_the_label_rule_floor() -> None:
    from icm.backends.base import label_logprobs

    assert label_logprobs({"the": -0.1, " a": -2.0}) == (FLOORED_LOGPROB, FLOORED_LOGPROB)
    assert math.isclose(FLOORED_LOGPROB, math.log(1e-5))


# -- through icm run (the synthetic stand-in: the run's plumbing, not a model) -----------


def test_icm_run_writes_the_reference_beside_the_labels(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = icm("run", "--model", "synthetic", "--K", "50", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "icm: zero-shot reference (each claim scored alone; group argmax" in r.stderr
    assert "groups right: ICM 8/8" in r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    zs = metrics["zero_shot"]
    assert zs["decided_on"] == "group" and zs["per_group"]["n"] == 8
    assert zs["per_claim"]["chance"] == 8 and zs["per_claim"]["majority_class"] == 8
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert all(isinstance(row["zero_shot_gap"], float) for row in rows)
    assert sum(row["zero_shot_label"] for row in rows) == 8
    saved = json.loads((out / "zero_shot.json").read_text())
    assert set(saved["gaps"]) == {row["id"] for row in rows}
    # A resume of the finished run finds its outputs whole (the reference included).
    again = icm("run", "--resume", str(out), "--quiet")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_no_zero_shot_skips_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = icm("run", "--model", "synthetic", "--K", "20", "--no-zero-shot", "--out", str(out))
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert "zero_shot" not in metrics or metrics["zero_shot"] is None
    assert not (out / "zero_shot.json").exists()
    assert "zero_shot_gap" not in (out / "labels.jsonl").read_text()
    refused = icm("run", "--model", "synthetic", "--no-zero-shot", "--init", "zero-shot")
    assert refused.returncode == 2 and "--init: zero-shot starts from the zero-shot pass" in (
        refused.stderr
    )


def test_init_zero_shot_starts_from_the_zero_shot_labels(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = icm("run", "--model", "synthetic", "--K", "5", "--init", "zero-shot", "--out", str(out))
    assert r.returncode == 0, r.stderr
    first = json.loads((out / "trace.jsonl").read_text().splitlines()[0])
    assert first["outcome"] == "init" and first["n_labeled"] == 16  # not num_seed 8
    zs = json.loads((out / "zero_shot.json").read_text())["gaps"]
    table = load_capitals_16()
    expected = zero_shot_labels(table, zs).labels
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    init_agreement = first["gold_agreement"]
    assert init_agreement == sum(expected[c.id] == c.gold for c in table.claims) / 16
    assert len(rows) == 16


def load_capitals_16() -> ClaimTable:
    from icm.config import RunConfig
    from icm.run import load_run_table

    return load_run_table(RunConfig(model="synthetic"))


def test_init_zero_shot_in_the_core_replaces_the_random_seeds() -> None:
    from icm import _icm_core as core

    table = load_capitals_16()
    truth = [core.Label.TRUE if c.gold else core.Label.FALSE for c in table.claims]
    scorer = core.SyntheticScorer(truth, core.SyntheticScorerParams())
    params = core.search_params_paper()
    params.max_iterations = 0
    search = core.Search(table.to_claim_set(), params, scorer)
    start = [core.Label.UNSET] * 16
    start[0], start[1] = core.Label.TRUE, core.Label.FALSE
    search.set_initial_labels(start)
    search.step()
    assert list(search.labels) == start  # consistent already: nothing to fix
    with pytest.raises(RuntimeError, match="already started"):
        search.set_initial_labels(start)
    fresh = core.Search(table.to_claim_set(), params, scorer)
    with pytest.raises(ValueError, match="initial_labels: size 3"):
        fresh.set_initial_labels(start[:3])


# -- the real model ---------------------------------------------------------------------


@pytest.mark.model
def test_preset_original_on_the_embedded_model_stops_at_once_naming_the_fix(
    tmp_path: Path,
) -> None:
    """With the trailing space kept, " True"/" False" are never in Gemma's top 20: every
    gap is 0. The run once annealed 18 minutes on nothing; it now stops after its first
    16 answers (the zero-shot pass's first requests)."""
    out = tmp_path / "r"
    r = icm("run", "--preset", "original", "--cache", str(tmp_path / "c.sqlite"), "--out", str(out))
    assert r.returncode == 2  # one line, like every icm error
    assert "scores floored: neither 'True' nor 'False'" in r.stderr
    assert "--no-keep-trailing-space" in r.stderr and "set by --preset original" in r.stderr
    assert "--resume" not in r.stderr  # a resume would fail the same way
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["floored_scores"]["answers"] == 16 == metrics["backend"]["requests"]
    assert metrics["floored_scores"]["neither_label_word"] == 16


@pytest.mark.model
def test_the_embedded_run_shows_icm_against_zero_shot(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = icm("run", "--K", "60", "--cache", str(tmp_path / "c.sqlite"), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "groups right: ICM " in r.stderr and "| zero-shot " in r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    zs = metrics["zero_shot"]
    # The model's zero-shot answers on the 8 default countries (measured: 7 of 8 right).
    assert zs["per_group"]["zero_shot"] >= 6
    assert metrics["floored_scores"]["neither_label_word"] == 0
    # 16 zero-shot requests, counted with the search's.
    assert json.loads((out / "zero_shot.json").read_text())["requests"] == 16
    assert metrics["backend"]["requests"] > 16
