"""mfv-wrong and mfv-foundation: the wrongness threshold, the exactly-one foundation
groups, the stratified split, and malformed input."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from icm.errors import DataError
from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.base import ClaimTable
from icm.testbeds.mfv import FOUNDATION_CLAIMS, WRONG_THRESHOLD

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CSV = DATA / "moral_foundations_vignettes" / "vignettes.csv"
needs_data = pytest.mark.skipif(not CSV.is_file(), reason=f"MFV data not found: {CSV}")
FIRST = "You see a teenage boy chuckling at an amputee he passes by while on the subway."


def load(name: str, split: str, data_dir: Path = DATA) -> ClaimTable:
    return get_testbed(name).load(split, LoadOptions(data_dir=data_dir))


@needs_data
def test_wrong_claims_threshold_and_split() -> None:
    train, test = load("mfv-wrong", "train"), load("mfv-wrong", "test")
    assert (len(train), len(test)) == (92, 40)
    assert train.relations == [] and test.relations == []
    first = next(c for c in train.claims if c.id == "train-v0")
    assert first.prompt == (
        f"Scenario: {FIRST}\nClaim: This behaviour is morally wrong.\nI think this claim is "
    )
    assert first.gold is True and first.fields["wrong_rating"] == 3.4
    claims = train.claims + test.claims
    # The documented separation: social-norm vignettes are rated 0.0-0.5, all others
    # 1.4-3.8, so the threshold 1.0 makes exactly the social-norm class "not wrong".
    norms = [c.fields["wrong_rating"] for c in claims if c.fields["foundation"] == "Social Norms"]
    others = [c.fields["wrong_rating"] for c in claims if c.fields["foundation"] != "Social Norms"]
    assert max(norms) == 0.5 < WRONG_THRESHOLD <= min(others) == 1.4
    assert all(c.gold == (c.fields["foundation"] != "Social Norms") for c in claims)
    assert Counter(c.gold for c in claims) == Counter({True: 116, False: 16})


@needs_data
def test_split_is_stratified_by_foundation() -> None:
    with CSV.open(encoding="utf-8", newline="") as f:
        per_class = Counter(r["Foundation"] for r in csv.DictReader(f))
    test = load("mfv-wrong", "test")
    in_test = Counter(c.fields["foundation"] for c in test.claims)
    assert in_test == Counter({k: n // 3 for k, n in per_class.items()})
    train_rows = {c.fields["row"] for c in load("mfv-wrong", "train").claims}
    assert train_rows.isdisjoint(c.fields["row"] for c in test.claims)


@needs_data
def test_foundation_groups_exactly_one_true() -> None:
    t = load("mfv-foundation", "train")
    assert len(t) == 7 * 92 and len(t.groups()) == 92 and len(t.relations) == 21 * 92
    assert {r.kind for r in t.relations} == {"at_most_one_true"}
    assert all(sum(bool(c.gold) for c in g) == 1 for g in t.groups().values())
    # Hand-checked: the amputee vignette is "Care (e)", so only the care claim is true.
    group = t.groups()["train-v0"]
    assert {c.fields["answer"]: c.gold for c in group} == {
        cls: cls == "care" for cls in FOUNDATION_CLAIMS
    }
    care = next(c for c in group if c.fields["answer"] == "care")
    assert care.prompt == (
        f"Scenario: {FIRST}\n"
        "Question: Which one moral norm, if any, does this behaviour violate?\n"
        "Claim: It violates norms of care: it harms someone or makes them suffer.\n"
        "I think this claim is "
    )
    ids = {c.id for c in group}
    assert sum(r.a in ids and r.b in ids for r in t.relations) == 21
    # Social-norm vignettes: the true answer is "violates no moral norm".
    norms = [g for g in t.groups().values() if g[0].fields["foundation"] == "Social Norms"]
    assert norms and all(next(c for c in g if c.gold).fields["answer"] == "none" for g in norms)
    assert len(load("mfv-foundation", "test")) == 7 * 40


@needs_data
def test_labelled_foundation_is_the_raters_majority_answer() -> None:
    columns = {"care": "Care", "fairness": "Fairness", "loyalty": "Loyalty"}
    columns |= {"authority": "Authority", "sanctity": "Sanctity", "liberty": "Liberty"}
    columns |= {"none": "Not Wrong"}
    t = load("mfv-foundation", "train")
    for g in t.groups().values():
        truth = next(c for c in g if c.gold)
        pct = truth.fields["percent"]
        assert max(pct, key=pct.get) == columns[truth.fields["answer"]]


@needs_data
def test_claims_do_not_contain_the_answer() -> None:
    # Only the scenario varies between vignettes, and no scenario names a foundation or
    # says "wrong".
    words = r"wrong|moral|unfair|fairness|loyal|authority|sanct|purity|liberty|care\b|harm"
    for c in load("mfv-wrong", "train").claims + load("mfv-wrong", "test").claims:
        assert not re.search(words, c.fields["scenario"], re.IGNORECASE), c.fields["scenario"]
    t = load("mfv-foundation", "test")
    claims_text = {c.prompt.split("Claim: ")[1] for c in t.claims}
    assert len(claims_text) == len(FOUNDATION_CLAIMS)


HEADER = "Scenario,Foundation,Care,Fairness,Loyalty,Authority,Sanctity,Liberty,Not Wrong,Wrong\n"
GOOD = '"You see a man.","Care (e)","83 %","0 %","0 %","3 %","10 %","3 %","0 %","3.4"\n'


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ('"You see a man.","Care (e)","83","0 %","0 %","3 %","10 %","3 %","0 %","3.4"\n', "Care"),
        (
            '"You see a man.","Kindness","83 %","0 %","0 %","3 %","10 %","3 %","0 %","3.4"\n',
            "Foundation",
        ),
        (
            '"You see a man.","Care (e)","83 %","0 %","0 %","3 %","10 %","3 %","0 %","high"\n',
            "Wrong",
        ),
        (
            '"You see a man.","Care (e)","83 %","0 %","0 %","3 %","10 %","3 %","0 %","5.0"\n',
            "Wrong",
        ),
        ('"","Care (e)","83 %","0 %","0 %","3 %","10 %","3 %","0 %","3.0"\n', "Scenario"),
    ],
)
def test_malformed_rows(tmp_path: Path, row: str, field: str) -> None:
    path = tmp_path / "moral_foundations_vignettes" / "vignettes.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + GOOD + row, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load("mfv-wrong", "train", tmp_path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 3, field)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "moral_foundations_vignettes" / "vignettes.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER.replace(",Wrong", ",Rating"), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load("mfv-foundation", "train", tmp_path)
    assert (err.value.line, err.value.field) == (1, "Wrong")


@needs_data
def test_icm_run_synthetic_on_foundations(tmp_path: Path) -> None:
    from icm.cli import main

    out = tmp_path / "run"
    argv = ["run", "--testbed", "mfv-foundation", "--model", "synthetic", "--size", "42"]
    argv += ["--K", "150", "--data-dir", str(DATA), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["n_claims"] == 42
    assert metrics["inconsistencies"] == 0
