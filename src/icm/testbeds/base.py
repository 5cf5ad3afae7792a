"""What a testbed is: claims rendered from a template, consistency relations that hold by
construction, and gold labels kept apart from anything the search can read.

A testbed is one module in icm/testbeds/ with a class decorated by @register_testbed.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from icm import _icm_core as core
from icm.errors import ConfigError

RelationKindName = Literal["same", "at_most_one_true", "opposite"]

RELATION_KINDS: dict[str, core.RelationKind] = {
    "same": core.RelationKind.SAME,
    "at_most_one_true": core.RelationKind.AT_MOST_ONE_TRUE,
    "opposite": core.RelationKind.OPPOSITE,
}

# The paper's claim template and its pairwise variant.
CLAIM_TEMPLATE = "Question: {question}\nClaim: {claim}\nI think this claim is "


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """One claim. `gold` is for reporting only and never reaches the search; nor does
    `fields` (source metadata for reports and analyses, some of which follows the gold label,
    e.g. how a wrong GSM8K solution was made)."""

    id: str
    prompt: str
    group: str = ""
    gold: bool | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RelationRecord:
    kind: RelationKindName
    a: str  # claim id
    b: str  # claim id


GROUP_KINDS: dict[str, core.GroupKind] = {"at_least_one_true": core.GroupKind.AT_LEAST_ONE_TRUE}


@dataclass(frozen=True, slots=True)
class GroupConstraintRecord:
    """A constraint on a whole set of claims: "at_least_one_true" (not all false)."""

    kind: Literal["at_least_one_true"]
    members: tuple[str, ...]  # claim ids


@dataclass
class ClaimTable:
    """One split of a testbed, ready for the search."""

    testbed: str
    split: str
    claims: list[ClaimRecord]
    relations: list[RelationRecord] = field(default_factory=list)
    label_words: tuple[str, str] = ("True", "False")
    # Said in the run's output: e.g. that the consistency structure was derived from gold
    # labels (--consistency paper), or which file stood in for a missing split.
    notes: list[str] = field(default_factory=list)
    structure_uses_gold: bool = False
    group_constraints: list[GroupConstraintRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        seen: dict[str, int] = {}
        for i, c in enumerate(self.claims):
            if not c.id:
                raise ConfigError(f"{self.testbed}/{self.split}: claim {i} has an empty id")
            if c.id in seen:
                raise ConfigError(
                    f"{self.testbed}/{self.split}: duplicate claim id '{c.id}' "
                    f"(claims {seen[c.id]} and {i})"
                )
            seen[c.id] = i
        for r in self.relations:
            if r.kind not in RELATION_KINDS:
                raise ConfigError(f"{self.testbed}/{self.split}: unknown relation kind '{r.kind}'")
            for end in (r.a, r.b):
                if end not in seen:
                    raise ConfigError(
                        f"{self.testbed}/{self.split}: relation {r.kind} names unknown "
                        f"claim '{end}'"
                    )
        for g in self.group_constraints:
            if g.kind not in GROUP_KINDS:
                raise ConfigError(
                    f"{self.testbed}/{self.split}: unknown group constraint '{g.kind}'"
                )
            if not g.members:
                raise ConfigError(
                    f"{self.testbed}/{self.split}: a {g.kind} constraint has no claims"
                )
            for m in g.members:
                if m not in seen:
                    raise ConfigError(
                        f"{self.testbed}/{self.split}: {g.kind} constraint names unknown "
                        f"claim '{m}'"
                    )

    def __len__(self) -> int:
        return len(self.claims)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.claims]

    def gold_labels(self) -> list[bool | None]:
        return [c.gold for c in self.claims]

    def to_claim_set(self) -> core.ClaimSet:
        """The C++ view: ids, prompts, groups and relations. No gold labels."""
        index = {c.id: i for i, c in enumerate(self.claims)}
        claims = [core.Claim(c.id, c.prompt, c.group) for c in self.claims]
        relations = [
            core.Relation(RELATION_KINDS[r.kind], index[r.a], index[r.b]) for r in self.relations
        ]
        groups = [
            core.GroupConstraint(GROUP_KINDS[g.kind], [index[m] for m in g.members])
            for g in self.group_constraints
        ]
        return core.ClaimSet(
            claims,
            relations,
            self.label_words[0],
            self.label_words[1],
            group_constraints=groups,
        )

    def subset(self, ids: Iterable[str]) -> ClaimTable:
        keep = set(ids)
        return ClaimTable(
            testbed=self.testbed,
            split=self.split,
            claims=[c for c in self.claims if c.id in keep],
            relations=[r for r in self.relations if r.a in keep and r.b in keep],
            label_words=self.label_words,
            notes=list(self.notes),
            structure_uses_gold=self.structure_uses_gold,
            # On part of its members "at least one true" no longer holds by construction.
            group_constraints=[g for g in self.group_constraints if keep.issuperset(g.members)],
        )

    def relations_of(self, claim_id: str) -> list[str]:
        """Every relation and group constraint `claim_id` takes part in, in words. A group
        constraint whose members are also pairwise at-most-one-true reads "exactly one"."""
        pairwise: dict[str, str] = {}  # other claim -> kind
        for r in self.relations:
            if claim_id in (r.a, r.b):
                pairwise[r.b if r.a == claim_id else r.a] = r.kind
        lines: list[str] = []
        exclusive = {"at_most_one_true", "opposite"}
        pairs = {(r.a, r.b) for r in self.relations if r.kind in exclusive}
        for g in self.group_constraints:
            if claim_id not in g.members:
                continue
            others = [m for m in g.members if m != claim_id]
            exactly_one = all(
                (a, b) in pairs or (b, a) in pairs
                for i, a in enumerate(g.members)
                for b in g.members[i + 1 :]
            )
            if exactly_one:
                lines.append(f"exactly one of this claim and {', '.join(others)} is true")
                for m in others:
                    pairwise.pop(m, None)
            else:
                lines.append(f"at least one of this claim and {', '.join(others)} is true")
        words = {
            "same": "same label as {} (both true or both false)",
            "opposite": "opposite of {} (exactly one of the two is true)",
            "at_most_one_true": "not both true with {} (at most one of the two)",
        }
        lines += [words[kind].format(other) for other, kind in pairwise.items()]
        return lines

    def groups(self) -> dict[str, list[ClaimRecord]]:
        out: dict[str, list[ClaimRecord]] = {}
        for c in self.claims:
            out.setdefault(c.group or c.id, []).append(c)
        return out

    def split_groups(self, test_fraction: float, seed: int) -> tuple[ClaimTable, ClaimTable]:
        """(train, test): a seeded random `test_fraction` of the consistency groups is the
        test part, never fewer than one group on either side. Whole groups, so no relation
        links a test claim to a train claim within a group."""
        if not 0 < test_fraction < 1:
            raise ConfigError(f"--test-fraction: must be between 0 and 1, got {test_fraction}")
        groups = list(self.groups())
        if len(groups) < 2:
            raise ConfigError(
                f"--test-fraction: {self.testbed} has {len(groups)} consistency group(s); "
                "a held-out part needs at least 2"
            )
        random.Random(f"test-fraction/{seed}").shuffle(groups)
        n_test = min(max(1, round(test_fraction * len(groups))), len(groups) - 1)
        test_groups = set(groups[:n_test])
        in_test = [c.id for c in self.claims if (c.group or c.id) in test_groups]
        held_out = set(in_test)
        return self.subset(c.id for c in self.claims if c.id not in held_out), self.subset(in_test)

    def sample_groups(self, size: int | None, seed: int) -> ClaimTable:
        """At most `size` claims made of whole consistency groups, picked at random."""
        if size is None or size >= len(self.claims):
            return self
        if size < 1:
            raise ConfigError(f"size: must be >= 1, got {size}")
        groups = list(self.groups().values())
        random.Random(seed).shuffle(groups)
        chosen: list[str] = []
        for g in groups:
            if len(chosen) + len(g) > size and chosen:
                continue
            chosen.extend(c.id for c in g)
            if len(chosen) >= size:
                break
        keep = set(chosen)
        return self.subset(c.id for c in self.claims if c.id in keep)


@dataclass(frozen=True)
class LoadOptions:
    data_dir: Path | None = None
    size: int | None = None  # at most this many claims (whole groups); None = all
    seed: int = 0
    consistency: str = "default"  # "default" (by construction), "none", or "paper"


class Testbed(ABC):
    """A registered testbed. Subclasses set the class attributes and implement load()."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    summary: ClassVar[str]
    source: ClassVar[str]  # where rows come from ("generated" or paths under the data dir)
    license: ClassVar[str]
    template: ClassVar[str] = CLAIM_TEMPLATE
    consistency_rule: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    needs_data: ClassVar[bool] = True
    consistency_modes: ClassVar[tuple[str, ...]] = ("default", "none")
    label_words: ClassVar[tuple[str, str]] = ("True", "False")
    balanced: ClassVar[bool] = False  # True and False gold labels equally often, by construction

    @abstractmethod
    def load_split(self, split: str, options: LoadOptions) -> ClaimTable:
        """All claims of one split (before size sampling)."""

    def load(self, split: str, options: LoadOptions | None = None) -> ClaimTable:
        options = options or LoadOptions()
        if split not in self.splits:
            raise ConfigError(
                f"split: testbed '{self.name}' has splits {list(self.splits)}, not '{split}'"
            )
        if options.consistency not in self.consistency_modes:
            raise ConfigError(
                f"--consistency: testbed '{self.name}' offers {list(self.consistency_modes)}, "
                f"not '{options.consistency}'"
            )
        table = self.load_split(split, options)
        if options.consistency == "none":
            table = ClaimTable(
                table.testbed,
                table.split,
                table.claims,
                [],
                table.label_words,
                [*table.notes, "consistency relations removed (--consistency none)"],
                False,
            )
        return table.sample_groups(options.size, options.seed)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "version": cls.version,
            "summary": cls.summary,
            "source": cls.source,
            "license": cls.license,
            "needs_data": cls.needs_data,
            "splits": list(cls.splits),
            "consistency_rule": cls.consistency_rule,
            "consistency_modes": list(cls.consistency_modes),
            "balanced": cls.balanced,
        }
