"""comparison: which of two well-known things is larger? Both orders, opposite labels.

Generated, no external data. For two things of one kind (planets, mountains, rivers,
countries, animals, oceans, buildings) the question names them in one order and the claim
says the first is larger ("Which is taller, Mount Everest or Mount Fuji? / Mount Everest
is taller than Mount Fuji."); its twin names them in the other order. Exactly one of the
two is true, so the twins are OPPOSITE (by construction: two different sizes cannot each
exceed the other), and labels are balanced.

The sizes below are rounded, widely published values. A pair is only used when the larger
exceeds the smaller by a clear margin (MIN_RATIO, more for animals, whose sizes vary), so
rounding, differing definitions (a river's source, a building's antenna) and population
growth cannot flip an answer. Items with a contested or definition-dependent size
(France's or Denmark's area, the Mississippi) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from icm.testbeds import register_testbed
from icm.testbeds.base import CLAIM_TEMPLATE, ClaimTable, LoadOptions, Testbed
from icm.testbeds.claim_groups import (
    ClaimDraft,
    ClaimTableBuilder,
    by_content,
    every_pair,
    numbered_ids,
)
from icm.testbeds.shared_rows import in_test_split

TEST_FRACTION = 0.3
MIN_RATIO = 1.3


@dataclass(frozen=True)
class Kind:
    name: str
    question: str  # with {a} and {b}
    claim: str  # "{a} is larger than {b}", with {a} and {b}
    min_ratio: float
    items: tuple[tuple[str, float], ...]  # (name as written mid-sentence, size)


KINDS: tuple[Kind, ...] = (
    Kind(
        "diameter",
        "Which is larger in diameter, {a} or {b}?",
        "{A} is larger in diameter than {b}.",
        MIN_RATIO,
        (  # mean diameter, km
            ("the Sun", 1_392_700),
            ("Jupiter", 139_820),
            ("Saturn", 116_460),
            ("Uranus", 50_724),
            ("Neptune", 49_244),
            ("Earth", 12_742),
            ("Venus", 12_104),
            ("Mars", 6_779),
            ("Mercury", 4_879),
            ("the Moon", 3_475),
            ("Pluto", 2_377),
        ),
    ),
    Kind(
        "mountain height",
        "Which mountain is taller, {a} or {b}?",
        "{A} is taller than {b}.",
        MIN_RATIO,
        (  # height above sea level, m
            ("Mount Everest", 8_849),
            ("K2", 8_611),
            ("Aconcagua", 6_961),
            ("Denali", 6_190),
            ("Mount Kilimanjaro", 5_895),
            ("Mount Elbrus", 5_642),
            ("Mont Blanc", 4_806),
            ("the Matterhorn", 4_478),
            ("Mount Fuji", 3_776),
            ("Mount Olympus in Greece", 2_918),
            ("Mount Kosciuszko", 2_228),
            ("Ben Nevis", 1_345),
        ),
    ),
    Kind(
        "river length",
        "Which river is longer, {a} or {b}?",
        "{A} is longer than {b}.",
        MIN_RATIO,
        (  # length, km
            ("the Nile", 6_650),
            ("the Amazon", 6_400),
            ("the Yangtze", 6_300),
            ("the Yellow River", 5_464),
            ("the Congo", 4_700),
            ("the Mekong", 4_350),
            ("the Volga", 3_530),
            ("the Danube", 2_850),
            ("the Ganges", 2_525),
            ("the Rhine", 1_230),
            ("the Seine", 777),
            ("the Thames", 346),
        ),
    ),
    Kind(
        "country area",
        "Which country has the larger area, {a} or {b}?",
        "{A} has a larger area than {b}.",
        MIN_RATIO,
        (  # total area, thousand km²
            ("Russia", 17_098),
            ("Canada", 9_985),
            ("China", 9_597),
            ("Brazil", 8_516),
            ("Australia", 7_692),
            ("India", 3_287),
            ("Argentina", 2_780),
            ("Algeria", 2_382),
            ("Mexico", 1_964),
            ("Egypt", 1_002),
            ("Spain", 506),
            ("Japan", 378),
            ("Germany", 357),
            ("Italy", 301),
            ("the United Kingdom", 243),
            ("Greece", 132),
            ("Portugal", 92),
            ("Ireland", 70),
            ("Switzerland", 41),
            ("Belgium", 31),
        ),
    ),
    Kind(
        "country population",
        "Which country has more people, {a} or {b}?",
        "{A} has a larger population than {b}.",
        MIN_RATIO,
        (  # millions, about 2023
            ("India", 1_430),
            ("the United States", 335),
            ("Indonesia", 277),
            ("Pakistan", 240),
            ("Brazil", 216),
            ("Russia", 144),
            ("Japan", 124),
            ("Germany", 84),
            ("the United Kingdom", 68),
            ("Italy", 59),
            ("Spain", 48),
            ("Canada", 40),
            ("Australia", 26),
            ("the Netherlands", 18),
            ("Sweden", 10.5),
            ("Norway", 5.5),
            ("Iceland", 0.39),
        ),
    ),
    Kind(
        "animal mass",
        "Which animal is heavier, an adult {a} or an adult {b}?",
        "An adult {a} is heavier than an adult {b}.",
        2.0,  # individuals vary a lot
        (  # typical adult mass, kg
            ("blue whale", 140_000),
            ("African elephant", 6_000),
            ("hippopotamus", 1_500),
            ("giraffe", 1_200),
            ("horse", 500),
            ("polar bear", 450),
            ("lion", 190),
            ("ostrich", 110),
            ("gray wolf", 40),
            ("domestic cat", 4.5),
            ("chicken", 2.5),
            ("house mouse", 0.02),
        ),
    ),
    Kind(
        "ocean area",
        "Which ocean is larger, {a} or {b}?",
        "{A} is larger than {b}.",
        MIN_RATIO,
        (  # million km²
            ("the Pacific Ocean", 165),
            ("the Atlantic Ocean", 106),
            ("the Indian Ocean", 70),
            ("the Southern Ocean", 21),
            ("the Arctic Ocean", 15),
        ),
    ),
    Kind(
        "structure height",
        "Which is taller, {a} or {b}?",
        "{A} is taller than {b}.",
        MIN_RATIO,
        (  # height, m
            ("the Burj Khalifa", 828),
            ("the Shanghai Tower", 632),
            ("the CN Tower", 553),
            ("Taipei 101", 508),
            ("the Empire State Building", 381),
            ("the Eiffel Tower", 330),
            ("the Washington Monument", 169),
            ("the Great Pyramid of Giza", 139),
            ("the Elizabeth Tower (Big Ben)", 96),
            ("the Leaning Tower of Pisa", 56),
        ),
    ),
)


@dataclass(frozen=True)
class Pair:
    kind: Kind
    big: str
    small: str


def all_pairs() -> list[Pair]:
    out: list[Pair] = []
    for kind in KINDS:
        for (a, sa), (b, sb) in combinations(kind.items, 2):
            big, small = (a, b) if sa > sb else (b, a)
            if max(sa, sb) >= kind.min_ratio * min(sa, sb):
                out.append(Pair(kind, big, small))
    return out


def split_of(pair: Pair) -> str:
    key = f"{pair.kind.name}/{pair.big}/{pair.small}"
    return "test" if in_test_split(key, TEST_FRACTION, salt="comparison") else "train"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def render(kind: Kind, first: str, second: str) -> str:
    return CLAIM_TEMPLATE.format(
        question=kind.question.format(a=first, b=second),
        claim=kind.claim.format(A=_cap(first), a=first, b=second),
    )


@register_testbed
class Comparison(Testbed):
    name = "comparison"
    version = 1
    summary = "which of two well-known things is larger (planets, mountains, rivers, ...)"
    source = "generated from rounded public figures in icm/testbeds/comparison.py (no data)"
    license = "generated by icm (MIT); facts"
    template = CLAIM_TEMPLATE
    consistency_rule = (
        "a comparison and its order-swapped twin are OPPOSITE (exactly one order is true)"
    )
    needs_data = False
    balanced = True

    def load_split(self, split: str, options: LoadOptions) -> ClaimTable:
        builder = ClaimTableBuilder(self.name, split)
        for i, pair in enumerate(p for p in all_pairs() if split_of(p) == split):

            def draft(order: tuple[str, str, bool], kind: Kind = pair.kind) -> ClaimDraft:
                first, second, gold = order
                fields = {"kind": kind.name, "first": first, "second": second}
                return ClaimDraft(render(kind, first, second), gold, fields)

            # The order within a pair (and so the ids) comes from content, not from the label.
            builder.add_group(
                f"pair{i}",
                [(pair.big, pair.small, True), (pair.small, pair.big, False)],
                draft,
                ids=numbered_ids(f"{split}-{i}", 2),
                order=by_content(lambda o: o[0], salt=pair.kind.name),
                pairs=every_pair("opposite"),
            )
        return builder.table()
