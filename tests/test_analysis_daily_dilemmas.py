"""The DailyDilemmas value analysis: the statistics against known values, synthetic label
sets with a known answer, and `icm analyze RUN_DIR` end to end."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from icm.analysis import analyze_run
from icm.analysis.daily_dilemmas import (
    Decision,
    analyze_decisions,
    benjamini_hochberg,
    decisions_from_labels,
    holm,
    loo_accuracy,
    render_markdown,
    sign_test,
    value_table,
)
from icm.errors import ConfigError, DataError
from icm.testbeds.base import ClaimRecord

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "daily_dilemmas").is_dir(), reason=f"DailyDilemmas data not found in {DATA}"
)

# --- statistics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (0, 10, 2 / 1024),  # 0.001953125
        (2, 10, 112 / 1024),  # 2 * (1 + 10 + 45) / 2^10 = 0.109375
        (8, 10, 112 / 1024),  # symmetric
        (5, 20, 0.041389465332031),  # R: binom.test(5, 20)$p.value
        (10, 20, 1.0),
        (3, 6, 1.0),
        (0, 6, 0.03125),  # the smallest n that can reach p < 0.05
        (0, 5, 0.0625),
        (0, 0, 1.0),
    ],
)
def test_sign_test_known_values(k: int, n: int, p: float) -> None:
    assert sign_test(k, n) == pytest.approx(p, rel=1e-9)


def _log_space_p(k: int, n: int) -> float:
    """An independent computation: log-sum-exp of log binomial terms."""
    m = min(k, n - k)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(m + 1)]
    top = max(terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in terms))
    return min(1.0, math.exp(math.log(2) + log_tail - n * math.log(2)))


@pytest.mark.parametrize(("k", "n"), [(430, 1000), (600, 1000), (1, 40), (700, 1360), (150, 170)])
def test_sign_test_matches_log_space(k: int, n: int) -> None:
    assert sign_test(k, n) == pytest.approx(_log_space_p(k, n), rel=1e-9)


def test_sign_test_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        sign_test(5, 4)


def test_holm_and_benjamini_hochberg_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.04*1, 0.06)=0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04*4/4=0.04 (running minimum).
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == [] and benjamini_hochberg([]) == []


# --- synthetic decisions with a known answer ----------------------------------------------

POOL = [f"v{i}" for i in range(40)] + ["honesty"]


def synthetic_dilemmas(n: int, seed: int) -> list[tuple[frozenset[str], frozenset[str], str]]:
    """n dilemmas: (to_do values, not_to_do values, topic group), honesty on one side of
    about a third of them."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(40)]
    out = []
    for i in range(n):
        a = set(rng.choices(POOL[:40], weights, k=rng.randint(1, 5)))
        b = set(rng.choices(POOL[:40], weights, k=rng.randint(1, 5)))
        side = rng.random()
        if side < 1 / 6:
            a.add("honesty")
        elif side < 1 / 3:
            b.add("honesty")
        out.append((frozenset(a), frozenset(b), f"group{i % 4}"))
    return out


def decide(
    dilemmas: list[tuple[frozenset[str], frozenset[str], str]], rule: str, seed: int
) -> list[Decision]:
    rng = random.Random(seed)
    out = []
    for i, (a, b, group) in enumerate(dilemmas):
        if rule == "honesty" and ("honesty" in a) != ("honesty" in b):
            pick_a = "honesty" in a
        else:
            pick_a = rng.random() < 0.5
        chosen, rejected = (a, b) if pick_a else (b, a)
        out.append(Decision(i, "to_do" if pick_a else "not_to_do", chosen, rejected, group, i % 7))
    return out


def test_labels_that_follow_honesty_rank_it_first() -> None:
    decisions = decide(synthetic_dilemmas(600, seed=1), "honesty", seed=2)
    table = value_table(decisions)
    top = table[0]
    assert top.value == "honesty" and top.rejected_only == 0 and top.chosen_only > 150
    assert top.p is not None and top.p < 1e-40 and top.p_holm is not None and top.p_holm < 1e-38
    result = analyze_decisions(decisions)
    assert result["significant"][0] == "honesty"
    assert result["loo_value_accuracy"] > 0.6
    # The same inside every topic group.
    assert all(g["values"][0]["value"] == "honesty" for g in result["topic_groups"])


def test_random_labels_rarely_give_a_significant_value() -> None:
    dilemmas = synthetic_dilemmas(600, seed=5)
    runs = [analyze_decisions(decide(dilemmas, "random", seed=s)) for s in range(40)]
    # Holm keeps the family-wise error at 5%: expect about 2 of 40; without the
    # correction nearly every run would have some p < 0.05 among ~35 tested values.
    assert sum(bool(r["significant"]) for r in runs) <= 5
    assert sum(any(v["p"] is not None and v["p"] < 0.05 for v in r["values"]) for r in runs) >= 20
    accuracies = [r["loo_value_accuracy"] for r in runs]
    assert 0.45 < sum(accuracies) / len(accuracies) < 0.55


def test_untested_values_are_listed_last_without_p() -> None:
    decisions = decide(synthetic_dilemmas(60, seed=3), "random", seed=4)
    table = value_table(decisions, min_discordant=6)
    tested = [r for r in table if r.p is not None]
    untested = [r for r in table if r.p is None]
    assert table == tested + untested
    assert all(r.discordant < 6 for r in untested) and all(r.discordant >= 6 for r in tested)


def test_loo_accuracy_leaves_the_decision_out() -> None:
    # One value, always chosen: every decision is predicted from the others (all +1).
    ds = [Decision(i, "to_do", frozenset({"x"}), frozenset(), "g", 0) for i in range(5)]
    assert loo_accuracy(ds) == 1.0
    # A single decision has no others: no evidence, a tie, half credit.
    assert loo_accuracy(ds[:1]) == 0.5
    # The action-type baseline is in-sample: a 2-2 tie gives 50%, not the 0% of LOO.
    mixed = ds[:2] + [
        Decision(i, "not_to_do", frozenset(), frozenset({"x"}), "g", 0) for i in (8, 9)
    ]
    assert analyze_decisions(mixed)["majority_action_type_share"] == 0.5


def claim(cid: str, idx: int, kind: str, values: list[str]) -> ClaimRecord:
    fields = {"dilemma_idx": idx, "action_type": kind, "values": values}
    fields |= {"topic_group": "family", "topic": 1}
    return ClaimRecord(cid, "", f"d{idx}", None, fields)


def test_decisions_from_labels_counts_what_it_skips() -> None:
    claims = []
    for i in range(5):
        claims += [
            claim(f"d{i}-to_do", i, "to_do", ["a"]),
            claim(f"d{i}-not_to_do", i, "not_to_do", ["b"]),
        ]
    labels = {
        "d0-to_do": True,
        "d0-not_to_do": False,
        "d1-to_do": False,
        "d1-not_to_do": True,
        "d2-to_do": None,
        "d2-not_to_do": None,
        "d3-to_do": True,
        "d3-not_to_do": None,
        "d4-to_do": True,
        "d4-not_to_do": True,
    }
    decisions, skipped = decisions_from_labels(claims, labels)
    assert [(d.dilemma, d.chosen_type, set(d.chosen)) for d in decisions] == [
        (0, "to_do", {"a"}),
        (1, "not_to_do", {"b"}),
    ]
    assert skipped == {"unlabeled": 1, "partial": 1, "inconsistent": 1}


def test_report_without_decisions() -> None:
    result = {**analyze_decisions([]), "skipped": {"inconsistent": 4}}
    md = render_markdown(result)
    assert "0 decisions; dilemmas left out: inconsistent 4." in md
    assert "No decisions" in md and "## Values" not in md


# --- icm analyze RUN_DIR --------------------------------------------------------------------


def fake_run(run_dir: Path, rule: str, seed: int = 0) -> None:
    from icm.testbeds import LoadOptions, get_testbed

    table = get_testbed("daily-dilemmas").load("test", LoadOptions(data_dir=DATA))
    rng = random.Random(seed)
    run_dir.mkdir(parents=True)
    config = {"config": {"testbed": "daily-dilemmas", "split": "test", "data_dir": str(DATA)}}
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = []
    for group in table.groups().values():
        a, b = group
        has = ["honesty" in c.fields["values"] for c in group]
        pick = (
            a if (has[0] if rule == "honesty" and has[0] != has[1] else rng.random() < 0.5) else b
        )
        rows += [
            {"id": c.id, "label": c is pick, "group": c.group, "prompt": c.prompt} for c in group
        ]
    (run_dir / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@needs_data
def test_icm_analyze_on_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from icm.cli import main

    run = tmp_path / "run"
    fake_run(run, "honesty")
    assert main(["analyze", str(run), "--top", "5"]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | honesty |" in printed and "## By topic group" in printed
    result = json.loads((run / "analysis.json").read_text())
    assert result["decisions"] == 393 and result["values"][0]["value"] == "honesty"
    assert result["significant"][0] == "honesty"
    assert len(result["topic_groups"]) == 17
    md = (run / "analysis.md").read_text()
    assert md.startswith("# DailyDilemmas value analysis") and "| 1 | honesty |" in md


@needs_data
def test_analyze_rejects_foreign_ids_and_other_testbeds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, "random")
    with (run / "labels.jsonl").open("a") as f:
        f.write(json.dumps({"id": "d999999-to_do", "label": True, "prompt": "?"}) + "\n")
    with pytest.raises(DataError, match="d999999-to_do"):
        analyze_run(run, write=False)
    (run / "config.json").write_text(
        json.dumps({"config": {"testbed": "arithmetic", "split": "train"}})
    )
    with pytest.raises(ConfigError, match="no analysis for testbed 'arithmetic'"):
        analyze_run(run, write=False)


def test_analyze_bad_run_directories(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels\.jsonl: not found"):
        analyze_run(tmp_path, write=False)
    (tmp_path / "config.json").write_text('{"config": {"testbed": "daily-dilemmas"}}')
    (tmp_path / "labels.jsonl").write_text('{"id": "d1-to_do", "label": "yes", "prompt": "x"}\n')
    with pytest.raises(DataError, match=r"config\.split"):
        analyze_run(tmp_path, write=False)
    (tmp_path / "config.json").write_text(
        '{"config": {"testbed": "daily-dilemmas", "split": "test"}}'
    )
    with pytest.raises(DataError) as err:
        analyze_run(tmp_path, write=False)
    assert (err.value.line, err.value.field) == (1, "label")


@needs_data
def test_analyze_repeats_a_flagged_runs_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from icm.cli import main

    run = tmp_path / "run"
    fake_run(run, "honesty")
    (run / "metrics.json").write_text(
        json.dumps({"verdict": "inconsistent", "warnings": ["inconsistent: 9 of 10 violated"]})
    )
    assert main(["analyze", str(run), "--top", "5"]) == 0
    expected = f"{run}: the run's labelling ended inconsistent (inconsistent: 9 of 10 violated)"
    assert f"WARNING: {expected}" in capsys.readouterr().err.splitlines()
    assert json.loads((run / "analysis.json").read_text())["warning"] == expected
    assert f"**WARNING: {expected}**" in (run / "analysis.md").read_text()
