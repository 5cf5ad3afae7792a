"""ClaimTableBuilder, the one way a testbed builds its table: a group's order gives its
ids, relations and listing; --consistency paper lists the file's order instead."""

from __future__ import annotations

import pytest

from icm.testbeds.claim_groups import (
    ClaimDraft,
    ClaimTableBuilder,
    by_content,
    every_pair,
    group_by,
    numbered_ids,
)


def draft(word: str) -> ClaimDraft:
    return ClaimDraft(f"claim {word}", word == "b", {"word": word})


def test_a_group_in_its_order_with_ids_relations_and_a_constraint() -> None:
    builder = ClaimTableBuilder("t", "train")
    ids = builder.add_group(
        "g",
        ["a", "b", "c"],
        draft,
        ids=numbered_ids("train-g", 3),
        order=lambda ms: list(reversed(ms)),
        pairs=lambda x, y: "same" if {x, y} == {"a", "c"} else None,
        at_least_one_true=True,
    )
    table = builder.table(["a note"])
    assert ids == ["train-g-0", "train-g-1", "train-g-2"]
    assert [(c.id, c.prompt, c.group, c.gold) for c in table.claims] == [
        ("train-g-0", "claim c", "g", False),
        ("train-g-1", "claim b", "g", True),
        ("train-g-2", "claim a", "g", False),
    ]
    # Pairs are asked in group order: (c, a) is the first-and-last pair.
    assert [(r.kind, r.a, r.b) for r in table.relations] == [("same", "train-g-0", "train-g-2")]
    assert [g.members for g in table.group_constraints] == [tuple(ids)]
    assert table.notes == ["a note"] and not table.structure_uses_gold


def test_list_as_given_keeps_ids_and_relations_but_lists_the_file_order() -> None:
    def build(list_as_given: bool) -> list[tuple[str, str]]:
        builder = ClaimTableBuilder("t", "test")
        builder.add_group(
            "g",
            ["b", "a"],
            draft,
            ids=["x", "y"],
            order=sorted,
            pairs=every_pair("opposite"),
            list_as_given=list_as_given,
        )
        table = builder.table()
        assert [(r.a, r.b) for r in table.relations] == [("x", "y")]
        return [(c.id, c.prompt) for c in table.claims]

    assert build(False) == [("x", "claim a"), ("y", "claim b")]
    assert build(True) == [("y", "claim b"), ("x", "claim a")]


def test_content_order_does_not_follow_the_given_order() -> None:
    order = by_content(lambda w: w, salt="q1")
    words = [f"w{i}" for i in range(8)]
    assert order(words) == order(list(reversed(words)))
    assert sorted(order(words)) == words


def test_single_claims_shuffled_listing_and_grouping() -> None:
    builder = ClaimTableBuilder("t", "train")
    for w in "abcdef":
        builder.add_claim(f"id-{w}", draft(w), group="g1" if w < "d" else "g2")
    builder.shuffle_within_groups("salt")
    groups = [c.group for c in builder.claims]
    assert groups == ["g1"] * 3 + ["g2"] * 3
    assert sorted(c.id for c in builder.claims) == [f"id-{w}" for w in "abcdef"]
    assert group_by([1, 2, 3, 4], lambda n: n % 2) == {1: [1, 3], 0: [2, 4]}


def test_ids_must_match_the_members() -> None:
    with pytest.raises(ValueError, match="3 members, 2 ids"):
        ClaimTableBuilder("t", "s").add_group("g", ["a", "b", "c"], draft, ids=["x", "y"])
