"""The Python run driver around the C++ search: batches, gold kept out, notebook API."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random

import pytest

from icm import _icm_core as core
from icm.api import claims_table, label
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.search import run_icm
from icm.testbeds import LoadOptions, get_testbed


class PromptHashScorer(core.Scorer):
    """A deterministic function of the prompt text alone: it cannot see gold labels."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []

    def score(self, requests):
        out = []
        for r in requests:
            self.prompts.append(r.prompt)
            h = int.from_bytes(hashlib.sha256(r.prompt.encode()).digest()[:8], "little")
            gap = (h / 2**64) * 6 - 3
            out.append(core.LabelScore(-math.log1p(math.exp(-gap)), -math.log1p(math.exp(gap))))
        return out


def test_permuting_gold_labels_leaves_the_search_unchanged() -> None:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=30, seed=3))
    params = RunConfig(K=80).search_params()
    first = run_icm(table, PromptHashScorer(), params, batch_size=16)
    gold = [c.gold for c in table.claims]
    random.Random(0).shuffle(gold)
    permuted = dataclasses.replace(
        table,
        claims=[dataclasses.replace(c, gold=g) for c, g in zip(table.claims, gold, strict=True)],
    )
    second = run_icm(permuted, PromptHashScorer(), params, batch_size=16)
    assert first.labels == second.labels
    assert first.scores == second.scores
    assert [r["utility"] for r in first.trace] == [r["utility"] for r in second.trace]
    # Only the monitoring column (agreement with gold) may differ.
    assert [r["gold_agreement"] for r in first.trace] != [r["gold_agreement"] for r in second.trace]


def test_batches_are_independent_searches_over_whole_groups() -> None:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=40, seed=1))
    scorer = PromptHashScorer()
    result = run_icm(table, scorer, RunConfig(K=30).search_params(), batch_size=10)
    assert len(result.batches) == 4
    group_of = {c.id: c.group for c in table.claims}
    seen_groups: set[str] = set()
    for b in result.batches:
        groups = {group_of[i] for i in b.claim_ids}
        assert not groups & seen_groups  # no group is split across batches
        seen_groups |= groups
        # A batch's prompts only ever hold that batch's claims as demonstrations.
    assert sorted(result.labels) == sorted(c.id for c in table.claims)
    assert all(r["n_labeled"] <= 12 for r in result.trace)


def test_prompts_are_the_paper_format() -> None:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=6, seed=1))
    scorer = PromptHashScorer()
    run_icm(table, scorer, RunConfig(K=10, mp="exact").search_params(), batch_size=256)
    longest = max(scorer.prompts, key=len)
    parts = longest.split("\n\n")
    assert len(parts) >= 3
    for demo in parts[:-1]:
        assert demo.startswith("Question: What is ")
        assert demo.endswith("I think this claim is True") or demo.endswith(
            "I think this claim is False"
        )
    assert parts[-1].endswith("I think this claim is ")


def test_notebook_api_round_trip() -> None:
    claims = [
        {
            "id": f"q{i}-{a}",
            "question": f"What is {i} + 1?",
            "claim": f"{i} + 1 = {i + 1 + a}",
            "group": f"q{i}",
            "gold": a == 0,
        }
        for i in range(12)
        for a in range(2)
    ]
    table = claims_table(claims, relations=[("opposite", f"q{i}-0", f"q{i}-1") for i in range(12)])
    assert (
        table.claims[1].prompt
        == "Question: What is 0 + 1?\nClaim: 0 + 1 = 2\nI think this claim is "
    )
    result = label(table, "synthetic", K=300, seed=5)
    records = result.records()
    assert [r["id"] for r in records] == [c["id"] for c in claims]
    # Claims whose label would lower the mean confidence can stay unlabeled (as in the
    # original code); most get labels.
    assert sum(r["label"] is not None for r in records) >= 20
    assert result.agreement_with_gold() is not None and result.agreement_with_gold() >= 0.9
    assert result.trace()[0]["outcome"] == "init"
    with pytest.raises(ConfigError, match="unknown field"):
        label(table, "synthetic", temperature=3)
    with pytest.raises(ConfigError, match="field 'id' is missing"):
        claims_table([{"prompt": "x"}])
