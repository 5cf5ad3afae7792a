"""capitals: golden rendered claims, hand-checked facts and groups, sizes and splits."""

from __future__ import annotations

from typing import ClassVar

from icm import _icm_core as core
from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.capitals import CAPITALS, Capitals, split_of


def everything() -> dict[str, list]:
    tb = get_testbed("capitals")
    out: dict[str, list] = {}
    for split in tb.splits:
        for c in tb.load(split, LoadOptions()).claims:
            out.setdefault(c.fields["country"], []).append(c)
    return out


def test_golden_claims() -> None:
    france = everything()["France"]
    assert len(france) == 2
    (true,) = [c for c in france if c.gold]
    assert true.prompt == (
        "Question: What is the capital of France?\n"
        "Claim: The capital of France is Paris.\n"
        "I think this claim is "
    )
    (false,) = [c for c in france if not c.gold]
    assert false.prompt.startswith("Question: What is the capital of France?\nClaim: The capital")
    us = [c for c in everything()["the United States"] if c.gold]
    assert us[0].prompt.split("\n")[:2] == [
        "Question: What is the capital of the United States?",
        "Claim: The capital of the United States is Washington, D.C.",
    ]


def test_hand_checked_facts() -> None:
    table = dict(CAPITALS)
    for country, capital in {
        "France": "Paris",
        "Japan": "Tokyo",
        "Canada": "Ottawa",
        "Australia": "Canberra",
        "Brazil": "Brasília",
        "Nigeria": "Abuja",
        "Turkey": "Ankara",
        "Pakistan": "Islamabad",
        "New Zealand": "Wellington",
        "Morocco": "Rabat",
    }.items():
        assert table[country] == capital
    for disputed in ("Bolivia", "South Africa", "the Netherlands", "Georgia", "Luxembourg"):
        assert disputed not in table
    assert len(CAPITALS) >= 100
    assert len({c for c, _ in CAPITALS}) == len({c for _, c in CAPITALS}) == len(CAPITALS)


def test_groups_one_true_wrong_capitals_from_other_countries() -> None:
    tb = get_testbed("capitals")
    capitals = {cap for _, cap in CAPITALS}
    right = dict(CAPITALS)
    for split in tb.splits:
        t = tb.load(split, LoadOptions())
        ids = {c.id: c for c in t.claims}
        for group in t.groups().values():
            assert [c.gold for c in group].count(True) == 1
            for c in group:
                assert c.fields["city"] in capitals
                assert c.gold == (c.fields["city"] == right[c.fields["country"]])
        # Two claims per country, the right capital always one of them: exactly one is
        # true, an OPPOSITE relation within each country.
        for r in t.relations:
            assert r.kind == "opposite"
            assert ids[r.a].fields["country"] == ids[r.b].fields["country"]
        assert len(t.relations) == len(t.groups())


def test_sizes_and_disjoint_splits() -> None:
    tb = get_testbed("capitals")
    train, test = (tb.load(s, LoadOptions()) for s in ("train", "test"))
    assert len(train) + len(test) == 2 * len(CAPITALS)
    assert len(train) > 2 * len(test)
    assert not {c.fields["country"] for c in train.claims} & {
        c.fields["country"] for c in test.claims
    }
    assert all(split_of(c.fields["country"]) == "test" for c in test.claims)


def test_more_claims_per_country_are_exactly_one_true() -> None:
    class Capitals4(Capitals):
        claims_per_country: ClassVar[int] = 4  # type: ignore[misc]

    t = Capitals4().load("test", LoadOptions())
    for group in t.groups().values():
        assert len(group) == 4 and sum(bool(c.gold) for c in group) == 1
        assert len({c.fields["city"] for c in group}) == 4
    assert len(t.relations) == 6 * len(t.groups())
    assert all(r.kind == "at_most_one_true" for r in t.relations)
    # ... plus "at least one true" per country: the right capital is among its claims.
    assert len(t.group_constraints) == len(t.groups())
    group_of = {c.id: c.group for c in t.claims}
    for g in t.group_constraints:
        assert g.kind == "at_least_one_true" and len(g.members) == 4
        assert len({group_of[m] for m in g.members}) == 1
    # The gold labels satisfy every constraint, and all-false violates every group.
    gold = [core.Label.TRUE if c.gold else core.Label.FALSE for c in t.claims]
    assert core.count_inconsistencies(t.to_claim_set(), gold) == 0
    all_false = [core.Label.FALSE] * len(t.claims)
    assert core.count_inconsistencies(t.to_claim_set(), all_false) == len(t.groups())


def test_size_picks_whole_countries_for_a_seed() -> None:
    tb = get_testbed("capitals")
    a = tb.load("train", LoadOptions(size=10, seed=3))
    b = tb.load("train", LoadOptions(size=10, seed=3))
    assert len(a) == 10 and [c.prompt for c in a.claims] == [c.prompt for c in b.claims]
    assert len(a.groups()) == 5 and len(a.relations) == 5
