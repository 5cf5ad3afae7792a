"""How a testbed turns its rows into a ClaimTable: one consistency group at a time.

Every testbed has one shape. Rows fall into consistency groups (a question and its
answers, a comparison in both orders, a vignette and its seven answers). Within a group
the members get an order that cannot carry their gold label (by a hash of their content,
a stable coin, a seeded shuffle); ids follow that order; each member becomes a claim; the
relations that hold by construction join pairs of members, and "at least one is true"
may hold for the whole group. ClaimTableBuilder.add_group is that shape: a testbed calls
it once per group, then takes the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from icm.testbeds.base import (
    ClaimRecord,
    ClaimTable,
    GroupConstraintRecord,
    RelationKindName,
    RelationRecord,
)
from icm.testbeds.shared_rows import content_order, shuffled_within_groups

T = TypeVar("T")
K = TypeVar("K")

# The relation that holds by construction between two members of one group, if any. It is
# asked once per pair, members in group order (the first before the second).
PairRule = Callable[[T, T], RelationKindName | None]


@dataclass(frozen=True, slots=True)
class ClaimDraft:
    """A claim before it has an id and a group: its prompt, gold label and source fields."""

    prompt: str
    gold: bool | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """Items by group key, groups in order of first appearance, items in their order."""
    out: dict[K, list[T]] = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def numbered_ids(prefix: str, n: int) -> list[str]:
    """`<prefix>-0`, `<prefix>-1`, ...: ids by position in the group's order."""
    return [f"{prefix}-{k}" for k in range(n)]


def by_content(key: Callable[[T], object], *, salt: str) -> Callable[[Sequence[T]], list[T]]:
    """An order by a hash of each member's content (shared_rows.content_order): neither a
    position nor an id given by it can carry the gold label."""
    return lambda members: content_order(members, key, salt=salt)


def drafted(member: ClaimDraft) -> ClaimDraft:
    """The `draft` of add_group for members that are drafts already."""
    return member


def every_pair(kind: RelationKindName) -> PairRule[Any]:
    """The same relation between every two members of a group."""
    return lambda _first, _second: kind


class ClaimTableBuilder:
    """The claims, relations and group constraints of one split, a group at a time."""

    def __init__(self, testbed: str, split: str) -> None:
        self.testbed = testbed
        self.split = split
        self.claims: list[ClaimRecord] = []
        self.relations: list[RelationRecord] = []
        self.group_constraints: list[GroupConstraintRecord] = []

    def add_group(
        self,
        group: str,
        members: Sequence[T],
        draft: Callable[[T], ClaimDraft],
        *,
        ids: Sequence[str],
        order: Callable[[Sequence[T]], list[T]] | None = None,
        pairs: PairRule[T] | None = None,
        at_least_one_true: bool = False,
        list_as_given: bool = False,
    ) -> list[str]:
        """Add one consistency group; returns its claim ids, in group order.

        members: the group's rows, as the source gives them. order: the group order (ids,
        relations and the listing follow it); None keeps the given order. ids: one per
        member, in group order (numbered_ids, or names such as `<row>-a`, `<row>-b`).
        draft: a member's claim. pairs: the relation of two members, if any.
        at_least_one_true: one of the group's claims is true by construction (its
        correct answer is among them). list_as_given: list the claims in the given order
        instead (`--consistency paper`: the original code keeps the file's order within
        a group; its relations already come from gold labels, so the order may carry
        them too).
        """
        ordered = order(members) if order is not None else list(members)
        group_ids = list(ids)
        if len(group_ids) != len(ordered):
            raise ValueError(f"group {group!r}: {len(ordered)} members, {len(group_ids)} ids")
        self._list_claims(group, members, ordered, group_ids, draft, list_as_given)
        if pairs is not None:
            self._relate_pairs(ordered, group_ids, pairs)
        if at_least_one_true:
            self.group_constraints.append(
                GroupConstraintRecord("at_least_one_true", tuple(group_ids))
            )
        return group_ids

    def add_claim(self, claim_id: str, draft: ClaimDraft, group: str = "") -> None:
        """A claim with no relation; without a group it is a group of its own."""
        self.add_group(group, [draft], drafted, ids=[claim_id])

    def shuffle_within_groups(self, salt: str) -> None:
        """List each group's claims in a stable pseudo-random order, ids unchanged (see
        shared_rows.shuffled_within_groups); groups keep the order of their first claim."""
        self.claims = shuffled_within_groups(self.claims, salt)

    def table(self, notes: Sequence[str] = (), *, structure_uses_gold: bool = False) -> ClaimTable:
        return ClaimTable(
            self.testbed,
            self.split,
            self.claims,
            self.relations,
            notes=list(notes),
            structure_uses_gold=structure_uses_gold,
            group_constraints=self.group_constraints,
        )

    def _list_claims(
        self,
        group: str,
        given: Sequence[T],
        ordered: list[T],
        ids: list[str],
        draft: Callable[[T], ClaimDraft],
        list_as_given: bool,
    ) -> None:
        listing = list(zip(ids, ordered, strict=True))
        if list_as_given:
            position = {id(member): i for i, member in enumerate(given)}
            listing.sort(key=lambda pair: position[id(pair[1])])
        for claim_id, member in listing:
            d = draft(member)
            self.claims.append(ClaimRecord(claim_id, d.prompt, group, d.gold, d.fields))

    def _relate_pairs(self, ordered: list[T], ids: list[str], pairs: PairRule[T]) -> None:
        for i in range(len(ordered)):
            for j in range(i + 1, len(ordered)):
                kind = pairs(ordered[i], ordered[j])
                if kind is not None:
                    self.relations.append(RelationRecord(kind, ids[i], ids[j]))
