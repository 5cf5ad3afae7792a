"""arithmetic (the lead's example testbed): golden rendered claims and hand-checked groups."""

from __future__ import annotations

from icm.testbeds import LoadOptions, get_testbed


def test_golden_claim_and_its_twin() -> None:
    tb = get_testbed("arithmetic")
    t = next(
        t
        for t in (tb.load(s, LoadOptions()) for s in tb.splits)
        if any(c.fields["a"] == 10 and c.fields["b"] == 11 for c in t.claims)
    )
    group = [c for c in t.claims if (c.fields["a"], c.fields["b"]) == (10, 11)]
    (true,) = [c for c in group if c.gold]
    assert true.prompt == "Question: What is 10 + 11?\nClaim: 10 + 11 = 21\nI think this claim is "
    (false,) = [c for c in group if not c.gold]
    assert false.fields["answer"] in (20, 22, 11, 31, 12)  # 21 +-1, +-10, digits swapped
    (rel,) = [r for r in t.relations if true.id in (r.a, r.b)]
    assert rel.kind == "opposite" and {rel.a, rel.b} == {true.id, false.id}


def test_every_question_has_one_true_sum_and_balanced_labels() -> None:
    tb = get_testbed("arithmetic")
    for split in tb.splits:
        t = tb.load(split, LoadOptions())
        for group in t.groups().values():
            assert len(group) == 2
            for c in group:
                assert c.gold == (c.fields["a"] + c.fields["b"] == c.fields["answer"])
            assert sum(bool(c.gold) for c in group) == 1
        assert sum(bool(c.gold) for c in t.claims) * 2 == len(t)
