"""Held-out evaluation: demonstrations, label sources and confidence intervals."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from icm.backends.base import LabelScorer
from icm.errors import ConfigError
from icm.evaluate import (
    Demonstration,
    EvalConfig,
    bootstrap_ci,
    fit_demonstrations,
    matched_random_labels,
    order_demonstrations,
    render_demonstrations,
    run_eval,
)
from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.loading import load_table

CLAIM = re.compile(r"Claim: (\d+) \+ (\d+) = (\d+)\nI think this claim is (True|False)?")


class DemoFollowingScorer(LabelScorer):
    """A stand-in for a model, for testing the metric code only: it knows arithmetic, but
    answers against it when most demonstrations in its prompt are labeled wrongly (as an
    in-context learner would follow its demonstrations)."""

    model_id = "demo-follower"

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        out = []
        for p in prompts:
            matches = CLAIM.findall(p)
            *demos, (a, b, c, _) = matches
            right = sum((int(x) + int(y) == int(z)) == (lab == "True") for x, y, z, lab in demos)
            follow = not demos or right >= len(demos) / 2
            truth = int(a) + int(b) == int(c)
            answer = truth if follow else not truth
            out.append((-0.1, -3.0) if answer else (-3.0, -0.1))
            self.stats.requests += 1
        return out


def test_ci_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    rng = random.Random(1)
    covered = 0
    trials = 300
    for t in range(trials):
        correct = [rng.random() < 0.7 for _ in range(200)]
        lo, hi = bootstrap_ci(correct, resamples=400, seed=t)
        covered += lo <= 0.7 <= hi
    assert 0.90 <= covered / trials <= 0.99
    lo, hi = bootstrap_ci([True] * 50 + [False] * 50, seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.25


def test_demonstrations_keep_groups_and_fit_the_budget() -> None:
    train = get_testbed("arithmetic").load("train", LoadOptions(size=40, seed=2))
    test = get_testbed("arithmetic").load("test", LoadOptions(size=10, seed=2))
    labels = {c.id: c.gold for c in train.claims}
    demos = order_demonstrations(train, labels, seed=5)
    assert len(demos) == 40
    # Whole groups stay together: each question's two claims are adjacent.
    questions = [d.prompt.split("\n")[0] for d in demos]
    assert all(questions[i] == questions[i + 1] for i in range(0, 40, 2))
    assert order_demonstrations(train, labels, seed=5) == demos
    assert order_demonstrations(train, labels, seed=6) != demos
    fitted = fit_demonstrations(
        demos,
        test,
        context_tokens=200,
        chars_per_token=3.0,
        max_demos=None,
        label_words=("True", "False"),
    )
    longest = max(len(c.prompt) for c in test.claims)
    assert 0 < len(fitted) < 40
    assert len(render_demonstrations(fitted, ("True", "False"))) + longest <= 600
    assert fitted == demos[: len(fitted)]
    capped = fit_demonstrations(
        demos,
        test,
        context_tokens=10**6,
        chars_per_token=3.0,
        max_demos=7,
        label_words=("True", "False"),
    )
    assert len(capped) == 7
    assert render_demonstrations([Demonstration("P ", True)], ("Yes", "No")) == "P Yes\n\n"


def test_matched_random_labels_have_exactly_the_requested_accuracy() -> None:
    train = get_testbed("arithmetic").load("train", LoadOptions(size=200, seed=2))
    labels = matched_random_labels(train, 0.83, seed=4)
    right = sum(labels[c.id] == c.gold for c in train.claims)
    assert right == 200 - round(0.17 * 200)
    assert matched_random_labels(train, 0.83, seed=5) != labels


@pytest.mark.parametrize("source", ["golden", "random", "zero-shot", "bootstrap"])
def test_label_sources_rank_as_they_should_with_a_demo_following_model(source: str) -> None:
    cfg = EvalConfig(
        labels=source,
        testbed="arithmetic",
        test_size=60,
        train_size=40,
        seed=3,
        context_tokens=2000,
    )
    result = run_eval(cfg, scorer=DemoFollowingScorer())
    assert result.n_test == 60
    lo, hi = result.ci95
    assert lo <= result.accuracy <= hi
    if source in ("golden", "zero-shot"):
        assert result.accuracy == 1.0
    if source == "golden":
        assert result.n_demos > 10 and result.details["demo_label_accuracy"] == 1.0
    if source == "zero-shot":
        assert result.n_demos == 0


def test_inverted_labels_score_below_golden(tmp_path) -> None:
    """The metric sees label quality: an ICM 'run' whose labels are all wrong gets 0%."""
    import json

    train = get_testbed("arithmetic").load("train", LoadOptions(size=30, seed=1))
    run = tmp_path / "run"
    run.mkdir()
    (run / "labels.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": c.id,
                    "label": not c.gold,
                    "score": 0.0,
                    "group": c.group,
                    "gold": c.gold,
                    "prompt": c.prompt,
                }
            )
            + "\n"
            for c in train.claims
        )
    )
    (run / "config.json").write_text(
        json.dumps(
            {
                "config": {"testbed": "arithmetic", "split": "train"},
                "testbed": {
                    "name": "arithmetic",
                    "split": "train",
                    "label_words": ["True", "False"],
                },
            }
        )
    )
    inverted = run_eval(EvalConfig(labels=str(run), test_size=40), scorer=DemoFollowingScorer())
    golden = run_eval(
        EvalConfig(labels="golden", testbed="arithmetic", train_size=30, test_size=40),
        scorer=DemoFollowingScorer(),
    )
    assert inverted.source == "icm" and inverted.details["icm_agreement_with_gold"] == 0.0
    assert inverted.accuracy == 0.0 and golden.accuracy == 1.0
    matched = run_eval(
        EvalConfig(
            labels="random-matched",
            matched_run=str(run),
            testbed="arithmetic",
            train_size=30,
            test_size=40,
        ),
        scorer=DemoFollowingScorer(),
    )
    assert matched.details["matched_accuracy"] == 0.0 and matched.accuracy == 0.0


def test_threshold_free_metrics() -> None:
    from icm.evaluate import auroc, group_argmax_accuracy

    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5  # ties count half
    assert auroc([1.0, 0.5], [True, None]) is None
    # All gaps positive (a True-biased model) but ranked right within every pair.
    test = get_testbed("arithmetic").load("test", LoadOptions(size=20, seed=1))
    gaps = [2.0 if c.gold else 1.0 for c in test.claims]
    assert group_argmax_accuracy(test, gaps) == 1.0
    assert group_argmax_accuracy(test, [-g for g in gaps]) == 0.0


def write_claims_file(path: Path, n_questions: int = 55) -> Path:
    """A custom claims file: per question three sums, exactly one right (165 claims)."""
    rows: list[dict[str, object]] = []
    for q in range(n_questions):
        a = q % 7 + 2
        for k in range(3):
            claim = f"{q} + {a} = {q + a + k - 1}"
            rows.append({"id": f"q{q}-{k}", "claim": claim, "group": f"q{q}", "label": k == 1})
        rows.append({"relation": "exactly_one_true", "group": f"q{q}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_claims_file_without_test_fraction_says_how_to_hold_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A claims file is one split: the error says so (it used to count 198 'test claims
    also train claims' of a 165-claim file, adding the shared ids to the shared prompts)."""
    from icm import cli

    path = write_claims_file(tmp_path / "claims.jsonl")
    assert cli.main(["eval", "--labels", "golden", "--testbed", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--test-fraction" in err and "198" not in err


def test_test_fraction_holds_out_whole_groups_seeded(tmp_path: Path) -> None:
    path = write_claims_file(tmp_path / "claims.jsonl")
    table = load_table(str(path), "train", LoadOptions())
    train, test = table.split_groups(0.3, seed=1)
    assert len(test.groups()) == round(0.3 * 55) and len(train) + len(test) == 165
    assert not {c.group for c in train.claims} & {c.group for c in test.claims}
    assert len(test.group_constraints) == len(test.groups())  # exactly-one kept per group
    again = table.split_groups(0.3, seed=1)[1]
    assert [c.id for c in again.claims] == [c.id for c in test.claims]
    assert {c.id for c in table.split_groups(0.3, seed=2)[1].claims} != {c.id for c in test.claims}
    with pytest.raises(ConfigError, match="--test-fraction: must be between 0 and 1"):
        table.split_groups(1.0, seed=1)


def test_eval_on_a_claims_file_with_test_fraction(tmp_path: Path) -> None:
    """Golden labels, then an ICM run directory that labeled every claim of the file: its
    claims in the held-out part are not shown as demonstrations."""
    path = write_claims_file(tmp_path / "claims.jsonl")
    cfg = EvalConfig(labels="golden", testbed=str(path), test_fraction=0.3, seed=4)
    golden = run_eval(cfg, scorer=DemoFollowingScorer())
    assert golden.n_test == 3 * round(0.3 * 55) and golden.accuracy == 1.0
    table = load_table(str(path), "train", LoadOptions())
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"id": c.id, "label": c.gold, "group": c.group, "gold": c.gold, "prompt": c.prompt}
        for c in table.claims
    ]
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.json").write_text(
        json.dumps(
            {
                "config": {"testbed": str(path), "split": "train"},
                "testbed": {"name": path.name, "split": "all", "label_words": ["True", "False"]},
            }
        )
    )
    with pytest.raises(ConfigError, match="--test-fraction"):
        run_eval(EvalConfig(labels=str(run)), scorer=DemoFollowingScorer())
    icm = run_eval(EvalConfig(labels=str(run), test_fraction=0.3, seed=4), DemoFollowingScorer())
    assert icm.n_test == golden.n_test and icm.details["run_claims_held_out"] == icm.n_test
    assert icm.accuracy == 1.0


class AlwaysTrueScorer(LabelScorer):
    """A stand-in for a model that answers True whatever it is shown (metric code only)."""

    model_id = "always-true"

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        self.stats.requests += len(prompts)
        return [(-0.1, -3.0)] * len(prompts)


def test_an_accuracy_resting_on_a_degenerate_labelling_says_so(tmp_path: Path) -> None:
    """Demonstrations from an ICM run that ended degenerate, all labeled one word, and
    predictions all on one side each give a warning in the result (icm eval prints them,
    replicate's report lists them); golden labels and a model that follows them give none."""
    train = get_testbed("arithmetic").load("train", LoadOptions(size=30, seed=1))
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"id": c.id, "label": True, "group": c.group, "gold": c.gold, "prompt": c.prompt}
        for c in train.claims
    ]
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.json").write_text(
        json.dumps({"config": {"testbed": "arithmetic", "split": "train"}})
    )
    (run / "metrics.json").write_text(
        json.dumps({"verdict": "degenerate", "warnings": ["degenerate: every label is True"]})
    )
    result = run_eval(EvalConfig(labels=str(run), test_size=40), scorer=AlwaysTrueScorer())
    warnings = result.details["warnings"]
    assert len(warnings) == 4, warnings
    assert warnings[0].startswith(f"{run}: the run's labelling ended degenerate (degenerate: every")
    assert warnings[1] == f"degenerate demonstrations: all {result.n_demos} are labeled True"
    assert warnings[2].startswith("below the majority class: accuracy 50.0%")
    assert f"({100 * result.accuracy:.1f}%)" in warnings[3]  # accuracy = share of gold True
    assert warnings[3].startswith(f"degenerate predictions: every one of the {result.n_test}")

    golden = run_eval(
        EvalConfig(labels="golden", testbed="arithmetic", train_size=30, test_size=40),
        scorer=DemoFollowingScorer(),
    )
    assert golden.details["warnings"] == [] and golden.accuracy == 1.0


def test_a_train_split_of_a_claims_file_is_refused_not_ignored(tmp_path: Path) -> None:
    """`icm eval --train-split test` on a claims file took demonstrations from the whole
    file (it has no splits) without a word."""
    path = write_claims_file(tmp_path / "claims.jsonl")
    cfg = EvalConfig(labels="golden", testbed=str(path), test_fraction=0.3, train_split="test")
    with pytest.raises(ConfigError, match="--train-split test: a claims file"):
        run_eval(cfg, scorer=DemoFollowingScorer())
    # --test-split beside --test-fraction was ignored too.
    cfg = EvalConfig(labels="golden", testbed=str(path), test_fraction=0.3, test_split="train")
    with pytest.raises(ConfigError, match="--test-split train: with --test-fraction"):
        run_eval(cfg, scorer=DemoFollowingScorer())


class AlwaysFalseScorer(LabelScorer):
    """Answers False whatever it is shown (metric code only)."""

    model_id = "always-false"

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        self.stats.requests += len(prompts)
        return [(-3.0, -0.1)] * len(prompts)


def test_class_imbalance_cannot_rank_a_constant_prediction_first(tmp_path: Path) -> None:
    """Two thirds of the claims are False (three sums a question, one right): a labelling
    whose predictions are all False scores 66.7% accuracy and once ranked first. Beside
    accuracy come balanced accuracy (50% for it), the majority-class rate, and group
    accuracy (argmax), by which results are ranked here; it is flagged."""
    path = write_claims_file(tmp_path / "claims.jsonl")
    cfg = EvalConfig(labels="random", testbed=str(path), test_fraction=0.3, seed=2)
    constant = run_eval(cfg, scorer=AlwaysFalseScorer())
    d = constant.details
    assert constant.accuracy == pytest.approx(2 / 3)
    assert d["balanced_accuracy"] == 0.5
    assert d["majority_class"] is False and d["majority_class_rate"] == pytest.approx(2 / 3)
    assert d["group_argmax_coverage"] == 1.0 and d["robust_metric"] == "group_argmax_accuracy"
    assert any(
        w.startswith("below the majority class: accuracy 66.7% is no better than predicting "
                     "False for every test claim (66.7%); balanced accuracy 50.0%")
        for w in d["warnings"]
    )  # fmt: skip
    golden = run_eval(
        EvalConfig(labels="golden", testbed=str(path), test_fraction=0.3, seed=2),
        scorer=DemoFollowingScorer(),
    )
    assert golden.details["robust_value"] == 1.0 > d["robust_value"]
    assert not any("majority" in w for w in golden.details["warnings"])

    from icm.cli.eval import result_line

    line = result_line(constant)
    assert "accuracy 66.7% (95% CI" in line and "balanced accuracy 50.0%" in line
    assert "majority class (False) 66.7%" in line and "group accuracy (argmax)" in line


def test_balanced_accuracy_and_majority_class() -> None:
    from icm.evaluate import balanced_accuracy, majority_class

    gold = [True, False, False, False, None]
    assert balanced_accuracy([1, -1, -1, -1, 5], gold) == 1.0
    assert balanced_accuracy([-1, -1, -1, -1, -1], gold) == 0.5
    assert balanced_accuracy([1, 1, -1, -1, 0], gold) == pytest.approx((1 + 2 / 3) / 2)
    assert majority_class(gold) == (False, 0.75)
    assert majority_class([True, False]) == (True, 0.5)
    assert majority_class([None]) is None
