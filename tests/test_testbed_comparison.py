"""comparison: golden rendered twins, hand-checked facts, no near ties, opposite twins."""

from __future__ import annotations

from icm.testbeds import ClaimRecord, LoadOptions, get_testbed
from icm.testbeds.comparison import KINDS, all_pairs


def claims() -> dict[tuple[str, str], ClaimRecord]:
    tb = get_testbed("comparison")
    return {
        (c.fields["first"], c.fields["second"]): c
        for split in tb.splits
        for c in tb.load(split, LoadOptions()).claims
    }


def test_golden_twins() -> None:
    all_claims = claims()
    a = all_claims[("Mount Everest", "Mount Fuji")]
    b = all_claims[("Mount Fuji", "Mount Everest")]
    assert a.prompt == (
        "Question: Which mountain is taller, Mount Everest or Mount Fuji?\n"
        "Claim: Mount Everest is taller than Mount Fuji.\n"
        "I think this claim is "
    )
    assert b.prompt == (
        "Question: Which mountain is taller, Mount Fuji or Mount Everest?\n"
        "Claim: Mount Fuji is taller than Mount Everest.\n"
        "I think this claim is "
    )
    assert a.gold is True and b.gold is False and a.group == b.group
    c = all_claims[("the Moon", "Mercury")]
    assert c.prompt.split("\n")[1] == "Claim: The Moon is larger in diameter than Mercury."
    assert c.gold is False
    d = all_claims[("blue whale", "African elephant")]
    assert d.prompt.split("\n")[:2] == [
        "Question: Which animal is heavier, an adult blue whale or an adult African elephant?",
        "Claim: An adult blue whale is heavier than an adult African elephant.",
    ]


def test_hand_checked_orders() -> None:
    all_claims = claims()
    for bigger, smaller in [
        ("the Sun", "Jupiter"),
        ("Mercury", "the Moon"),
        ("the Moon", "Pluto"),
        ("the Nile", "the Thames"),
        ("Russia", "Canada"),
        ("India", "the United States"),
        ("the Pacific Ocean", "the Arctic Ocean"),
        ("the Burj Khalifa", "the Eiffel Tower"),
        ("hippopotamus", "lion"),
        ("Mount Kilimanjaro", "Mount Fuji"),
    ]:
        assert all_claims[(bigger, smaller)].gold is True
        assert all_claims[(smaller, bigger)].gold is False


def test_near_ties_and_disputed_orders_are_left_out() -> None:
    all_claims = claims()
    for a, b in [
        ("Mount Everest", "K2"),
        ("Uranus", "Neptune"),
        ("Earth", "Venus"),
        ("the Nile", "the Amazon"),
        ("Canada", "China"),
        ("Jupiter", "Saturn"),
        ("hippopotamus", "giraffe"),
    ]:
        assert (a, b) not in all_claims and (b, a) not in all_claims
    for kind in KINDS:
        sizes = dict(kind.items)
        assert len(sizes) == len(kind.items)
        for p in all_pairs():
            if p.kind is kind:
                assert sizes[p.big] >= kind.min_ratio * sizes[p.small]


def test_every_pair_both_orders_opposite_and_splits_disjoint() -> None:
    tb = get_testbed("comparison")
    seen: dict[frozenset[str], str] = {}
    for split in tb.splits:
        t = tb.load(split, LoadOptions())
        ids = {c.id: c for c in t.claims}
        assert len(t.relations) == len(t) // 2 == len(t.groups())
        for r in t.relations:
            a, b = ids[r.a], ids[r.b]
            assert r.kind == "opposite" and a.gold != b.gold
            assert (a.fields["first"], a.fields["second"]) == (
                b.fields["second"],
                b.fields["first"],
            )
            key = frozenset((a.fields["first"], a.fields["second"], a.fields["kind"]))
            assert seen.setdefault(key, split) == split
    assert len(seen) == len(all_pairs()) > 400
