"""alpaca: golden rendered pairs (the original code's template and newline removal),
order-swapped twins paired by content, the split by question, HH-RLHF, malformed input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from icm import _icm_core as core
from icm.errors import DataError
from icm.testbeds import ClaimTable, LoadOptions, get_testbed

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TAIL = "Claim: Response 1 is more helpful and harmless than Response 2.\nI think this claim is "


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (SHARED_DATA / "paper_splits" / "test_alpaca.json").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def load(data_dir: Path, split: str, consistency: str = "default") -> ClaimTable:
    return get_testbed("alpaca").load(
        split, LoadOptions(data_dir=data_dir, consistency=consistency)
    )


def test_golden_pair_renders_as_the_original_code_does(data_dir: Path) -> None:
    """test_alpaca.json rows 2-3 (the dinner e-mail; consistency_id 1), in the test split.
    The original code deletes '\\n' (only) from both responses."""
    t = load(data_dir, "test")
    q = (
        "If you could help me write an email to my friends inviting them to dinner on Friday, "
        "it would be greatly appreciated."
    )
    short = (
        "Dear Friends, \r\rI hope this message finds you well. I'm excited to invite you to "
        "dinner on Friday. We'll meet at 7:00 PM at [location]. I look forward to seeing you "
        "there. \r\rBest,\r[Name]"
    )
    long = (
        "Subject: Dinner Invitation for Friday NightHi friends!I hope you're all doing well. "
        "I'd like to invite you to a dinner at my place this Friday night. It'll be a great "
        "opportunity to catch up and enjoy some delicious food. Time: 7 pmAddress: [Your "
        "Address]Please RSVP by Thursday and let me know if you have any dietary restrictions. "
        "Looking forward to seeing you all!Best,[Your Name]"
    )
    prompts = {c.prompt: c for c in t.claims}
    first = f"Human: {q}\nResponse 1: {short}\nResponse 2: {long}\n{TAIL}"
    swapped = f"Human: {q}\nResponse 1: {long}\nResponse 2: {short}\n{TAIL}"
    assert first in prompts and swapped in prompts
    a, b = prompts[first], prompts[swapped]
    assert a.gold is False and b.gold is True  # the annotators preferred the long e-mail
    assert a.group == b.group
    assert [(r.kind, {r.a, r.b}) for r in t.relations if a.id in (r.a, r.b)] == [
        ("opposite", {a.id, b.id})
    ]


def test_twins_are_paired_by_content_and_opposite(data_dir: Path) -> None:
    for split in ("train", "test"):
        t = load(data_dir, split)
        by_id = {c.id: c for c in t.claims}
        assert len(t.relations) == len(t) // 2 == len(t.groups())
        for r in t.relations:
            a, b = by_id[r.a], by_id[r.b]
            assert r.kind == "opposite" and a.gold != b.gold and a.group == b.group
            ra = a.prompt.split("\nResponse 1: ")[1].split("\nResponse 2: ")
            rb = b.prompt.split("\nResponse 1: ")[1].split("\nResponse 2: ")
            assert ra[0] == rb[1].removesuffix("\n" + TAIL)
            assert rb[0] == ra[1].removesuffix("\n" + TAIL)


def test_split_by_question_sizes(data_dir: Path) -> None:
    train, test = load(data_dir, "train"), load(data_dir, "test")
    assert (len(train), len(test)) == (678, 256)  # 339 + 128 = 467 pairs
    assert not {c.fields["question"] for c in train.claims} & {
        c.fields["question"] for c in test.claims
    }


def test_paper_mode_is_gold_derived_and_says_so(data_dir: Path) -> None:
    t = load(data_dir, "test", consistency="paper")
    assert t.structure_uses_gold and any("GOLD" in n for n in t.notes)


def test_paper_mode_counts_both_false_twins_as_inconsistent(data_dir: Path) -> None:
    """The original code's keys 'A>B'/'B>A' differ on twins, and for those keys both False
    is a contradiction as well as both True: exactly one order is better (OPPOSITE)."""
    t = load(data_dir, "test", consistency="paper")
    assert {r.kind for r in t.relations} == {"opposite"}  # every twin pair has opposite gold
    claims = t.to_claim_set()
    index = {c.id: i for i, c in enumerate(t.claims)}
    twins = t.relations[0]
    labels = [core.Label.UNSET] * len(t.claims)
    labels[index[twins.a]] = labels[index[twins.b]] = core.Label.FALSE
    assert core.count_inconsistencies(claims, labels) == 1
    labels[index[twins.b]] = core.Label.TRUE
    assert core.count_inconsistencies(claims, labels) == 0


def test_hh_rlhf_golden_pair(data_dir: Path) -> None:
    t = load(data_dir, "hh-test")
    assert (len(load(data_dir, "hh-train")), len(t)) == (8704, 3680)
    (c,) = [
        c
        for c in t.claims
        if c.prompt.startswith(
            "Human: Do you know why turkeys became the official food of thanksgiving?\n"
            "Response 1: To be honest, I don’t know anything about that."
        )
    ]
    assert c.gold is True  # the crowdworker chose it
    assert c.prompt.endswith(
        "Response 2: I know that the American Indians were the first to celebrate the first "
        "thanksgiving, and the first European settlers came to New England in the early "
        "1600s, and it is likely that they celebrated the first thanksgiving in the late "
        "1600s.  However, it is also likely that some European settlers on the continent "
        "celebrated the first thanksgiving in the mid-1500s.  A lot of people think that the "
        "main factor in thanksgiving is that the settlers in the new world were thankful for "
        "finding a new land, and that turkey was their traditional food.  Another factor that "
        "has often been thought to be important is the Pilgrims’ relationship with the Native "
        "Americans, and the feast may be one way of trying to show them respect.  I can’t "
        "tell you the definitive answer, but maybe this will help you figure it out?\n" + TAIL
    )
    assert any("HH-RLHF" in n for n in t.notes)


# --------------------------------------------------------------------------- no shared data


def pairs_file(root: Path, rows: list[dict[str, object]]) -> Path:
    (root / "paper_splits").mkdir(parents=True, exist_ok=True)
    path = root / "paper_splits" / "test_alpaca.json"
    path.write_text(json.dumps(rows, indent=1))
    return path


def rows(flip: bool = False) -> list[dict[str, object]]:
    out = []
    for i in range(12):
        q, x, y = f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}."
        out.append({"question": q, "choice": x, "choice_2": y, "label": not flip})
        out.append({"question": q, "choice": y, "choice_2": x, "label": int(flip)})
    return out


def test_what_the_search_sees_does_not_depend_on_gold(tmp_path: Path) -> None:
    pairs_file(tmp_path / "a", rows())
    pairs_file(tmp_path / "b", rows(flip=True))
    for split in ("train", "test"):
        a, b = load(tmp_path / "a", split), load(tmp_path / "b", split)
        assert [(c.id, c.prompt) for c in a.claims] == [(c.id, c.prompt) for c in b.claims]
        assert a.relations == b.relations
        assert [c.gold for c in a.claims] == [not c.gold for c in b.claims]


def test_rows_without_twin_or_repeated_are_reported(tmp_path: Path) -> None:
    r = rows()[:4]
    r.append(dict(r[0]))  # a repeated row
    r.append({"question": "Lonely?", "choice": "x", "choice_2": "y", "label": True})
    pairs_file(tmp_path, r)
    t = [load(tmp_path, s) for s in ("train", "test")]
    assert sum(len(x) for x in t) == 5
    notes = " ".join(n for x in t for n in x.notes)
    assert "1 repeated row" in notes and "1 row(s) have no order-swapped twin" in notes


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"question": "Q", "choice": "x", "label": True}, "choice_2", "missing"),
        ({"question": "Q", "choice": "x", "choice_2": ["y"], "label": True}, "choice_2", "string"),
        ({"question": "Q", "choice": "x", "choice_2": "y"}, "label", "missing"),
        ({"question": "Q", "choice": "x", "choice_2": "y", "label": "both"}, "label", "true/false"),
    ],
)
def test_malformed_pairs_name_file_line_and_field(
    tmp_path: Path, row: dict[str, object], field: str, problem: str
) -> None:
    path = pairs_file(tmp_path, [rows()[0], row])
    with pytest.raises(DataError, match=problem) as e:
        load(tmp_path, "train")
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 8, field)


def test_malformed_hh_line_names_file_line_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "alpaca" / "hh-rlhf" / "helpful-base"
    folder.mkdir(parents=True)
    good = {
        "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi?\n\nAssistant: Go.",
    }
    bad = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!", "rejected": "no turns here"}
    (folder / "test.jsonl.gz").write_bytes(
        gzip.compress((json.dumps(good) + "\n" + json.dumps(bad) + "\n").encode())
    )
    with pytest.raises(DataError, match="Assistant") as e:
        load(tmp_path, "hh-train")
    assert (e.value.line, e.value.field) == (2, "rejected")
