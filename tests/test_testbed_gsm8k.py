"""gsm8k: golden rendered claims, the documented perturbations, hand-checked groups of the
final-answer consistency rule, and malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icm.errors import DataError
from icm.testbeds import ClaimTable, LoadOptions, get_testbed
from icm.testbeds.gsm8k import (
    Solution,
    answer_key,
    arithmetic_slip,
    build_table,
    evaluate,
    perturb,
    render_solution,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

NATALIA_Q = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
NATALIA_A = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def load(data_dir: Path, split: str, consistency: str = "default") -> ClaimTable:
    return get_testbed("gsm8k").load(split, LoadOptions(data_dir=data_dir, consistency=consistency))


def relations_of(t: ClaimTable, ids: set[str]) -> dict[frozenset[str], str]:
    return {frozenset((r.a, r.b)): r.kind for r in t.relations if r.a in ids}


# --------------------------------------------------------------------------- the pieces


def test_answer_key_compares_numbers_not_formatting() -> None:
    assert answer_key("$1,200") == answer_key("1200") == answer_key("1200.00") == "1200"
    assert answer_key("95.0") == "95" and answer_key("0.50") == "0.5"
    assert answer_key("118 000") == "118000" and answer_key("25%") == "25"
    assert answer_key("27") != answer_key("21.60")
    assert answer_key("") == "" and answer_key("Tuesday") == "tuesday"


def test_evaluate_is_exact_and_safe() -> None:
    assert evaluate("48/2") == 24 and evaluate("0.2*50") == 10
    assert evaluate("(3+5)*2-1") == 15
    assert evaluate("__import__('os')") is None and evaluate("1/0") is None


def test_render_solution_matches_the_papers_reference_rendering() -> None:
    lines = NATALIA_A.split("\n")[:-1]
    assert render_solution(lines, "72") == (
        "Natalia sold 48/2 = 24 clips in May. "
        "Natalia sold 48+24 = 72 clips altogether in April and May. The answer is 72."
    )
    # As in test_gsm8k.json's reference rows: dollar signs go, sentences get a period.
    assert render_solution(["Five cost $5 x 1.50 = $<<5*1.50=7.50>>7.50"], "7.5") == (
        "Five cost 5 x 1.50 = 7.50. The answer is 7.5."
    )


def test_arithmetic_slip_propagates_to_the_final_answer() -> None:
    lines = NATALIA_A.split("\n")[:-1]
    # Step 0 (48/2) off by +1: 25 is carried into step 1, whose sum is recomputed.
    result = arithmetic_slip(lines, "72", step=0, delta=1)
    assert result is not None
    slipped, final = result
    assert final == "73"
    assert render_solution(slipped, final) == (
        "Natalia sold 48/2 = 25 clips in May. "
        "Natalia sold 48+25 = 73 clips altogether in April and May. The answer is 73."
    )
    # The last step off by -1: only the final sum is wrong.
    result = arithmetic_slip(lines, "72", step=1, delta=-1)
    assert result is not None
    slipped, final = result
    assert final == "71" and "48+24 = 71" in render_solution(slipped, final)
    # A slip that would make a count negative is not used.
    assert arithmetic_slip(["a = <<2-1=1>>1", "b = <<1*1=1>>1"], "1", step=1, delta=-10) is None


def test_perturbations_are_wrong_distinct_and_deterministic() -> None:
    lines = NATALIA_A.split("\n")[:-1]
    wrong = perturb(NATALIA_Q, lines, "72", 3)
    assert [k for k, _, _ in wrong].count("arithmetic-slip") == 2
    assert [k for k, _, _ in wrong].count("wrong-final-answer") == 1
    finals = [answer_key(f) for _, _, f in wrong]
    assert len(set(finals)) == 3 and "72" not in finals
    assert wrong == perturb(NATALIA_Q, lines, "72", 3)


# --------------------------------------------------------------------------- train


def test_train_golden_group(data_dir: Path) -> None:
    """The first GSM8K train question: the gold solution and three hand-checked wrong
    ones (48/2 is not 34; 48+24 is not 71; 24 is May's count, not the total)."""
    t = load(data_dir, "train")
    group = [c for c in t.claims if c.group == "q1"]
    head = f"Question: {NATALIA_Q}\nClaim: "
    tail = "\nI think this claim is "
    got = {
        c.prompt.removeprefix(head).removesuffix(tail): (c.gold, c.fields["kind"]) for c in group
    }
    assert got == {
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in "
        "April and May. The answer is 72.": (True, "gold"),
        "Natalia sold 48/2 = 34 clips in May. Natalia sold 48+34 = 82 clips altogether in "
        "April and May. The answer is 82.": (False, "arithmetic-slip"),
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 71 clips altogether in "
        "April and May. The answer is 71.": (False, "arithmetic-slip"),
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in "
        "April and May. The answer is 24.": (False, "wrong-final-answer"),
    }
    assert all(c.prompt.startswith(head) for c in group)
    # Four different final answers: every pair is at most one true.
    rel = relations_of(t, {c.id for c in group})
    assert len(rel) == 6 and set(rel.values()) == {"at_most_one_true"}


def test_train_has_one_true_solution_per_question_and_no_test_question(data_dir: Path) -> None:
    t = load(data_dir, "train")
    groups = t.groups()
    assert len(groups) == 7473
    assert all(sum(bool(c.gold) for c in g) == 1 for g in groups.values())
    assert sum(len(g) == 4 for g in groups.values()) > 0.85 * len(groups)
    test_q = {json.loads(line)["question"] for line in (data_dir / "gsm8k/test.jsonl").open()}
    train_q = {c.prompt.split("\nClaim: ")[0].removeprefix("Question: ") for c in t.claims}
    assert not train_q & test_q


# --------------------------------------------------------------------------- test


def test_test_split_golden_and_hand_checked_group(data_dir: Path) -> None:
    """'Dan plants 3 rose bushes' (consistency_id 334): three solutions ending in 600 (the
    right answer, two sampled and the reference), one ending in 83."""
    t = load(data_dir, "test")
    assert len(t) == 2972 and len(t.groups()) == 743
    group = [c for c in t.claims if c.group == "q334"]
    answers = {c.id: c.fields["answer"] for c in group}
    assert sorted(answers.values()) == ["600", "600", "600", "83"]
    reference = [c for c in group if c.fields["kind"] == "reference"]
    assert [c.prompt for c in reference] == [
        "Question: Dan plants 3 rose bushes. Each rose bush has 25 roses. Each rose has 8 "
        "thorns. How many thorns are there total?\nClaim: First find the total number of "
        "roses: 3 bushes * 25 roses/bush = 75 roses. Then multiply the number of roses by the "
        "number of thorns per rose: 75 roses * 8 thorns/rose = 600 thorns. The answer is "
        "600.\nI think this claim is "
    ]
    rel = relations_of(t, set(answers))
    assert len(rel) == 6
    for pair, kind in rel.items():
        a, b = (answers[i] for i in pair)
        assert kind == ("same" if a == b else "at_most_one_true")
    assert sum(k == "same" for k in rel.values()) == 3


def test_test_split_compares_answers_as_numbers_and_paper_mode_as_strings(data_dir: Path) -> None:
    """consistency_id 106: '27', '$27', '$21.60', '27'. '$27' is the same answer as '27'
    (SAME by default); the original code compared raw strings (AT_MOST_ONE_TRUE). The
    paper file labels '$27' false: its labels are exact string matches to the reference."""
    for mode, expected in (("default", "same"), ("paper", "at_most_one_true")):
        t = load(data_dir, "test", consistency=mode)
        group = {c.id: c for c in t.claims if c.group == "q106"}
        rel = relations_of(t, set(group))
        (plain,) = [i for i, c in group.items() if c.fields["answer"] == "27"][:1]
        (dollar,) = [i for i, c in group.items() if c.fields["answer"] == "$27"]
        assert rel[frozenset((plain, dollar))] == expected
        assert group[dollar].gold is False and group[plain].gold is True
        assert not t.structure_uses_gold


def test_paper_mode_compares_final_answers_as_raw_strings() -> None:
    """The original's consistency key is the answer string as it stands: '12' and ' 12' are
    two answers under --consistency paper (docs/algorithm.md), one by default."""

    def solution(answer: str) -> Solution:
        return Solution("Q?", f"So {answer}. The answer is {answer}.", answer, True, "g", "s", "f")

    for mode, expected in (("paper", "at_most_one_true"), ("default", "same")):
        t = build_table("gsm8k", "test", [solution("12"), solution(" 12")], mode, [])
        assert [r.kind for r in t.relations] == [expected], mode


def test_gold_breaks_known_number_of_test_relations(data_dir: Path) -> None:
    """The paper's test labels are string matches (70 right-but-differently-formatted
    answers are false) plus 25 reasoning judgements: they break 174 SAME relations."""
    t = load(data_dir, "test")
    gold = {c.id: c.gold for c in t.claims}
    broken = [r for r in t.relations if r.kind == "same" and gold[r.a] != gold[r.b]]
    both_true = [r for r in t.relations if r.kind == "at_most_one_true" and gold[r.a] and gold[r.b]]
    assert len(broken) == 174 and both_true == []
    (empty,) = [c for c in t.claims if c.fields["answer"] == ""]
    assert empty.prompt.endswith("Claim: The answer is\nI think this claim is ")


# --------------------------------------------------------------------------- errors


def test_malformed_train_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    path = tmp_path / "gsm8k" / "train.jsonl"
    good = json.dumps({"question": NATALIA_Q, "answer": NATALIA_A})
    cases = [
        (good + "\n" + '{"question": "Q", "answer": "no final answer"}\n', 2, "answer", "####"),
        (good + "\n" + '{"question": "Q"}\n', 2, "answer", "missing"),
        (good + "\n" + '{"question": 3, "answer": "x #### 1"}\n', 2, "question", "string"),
        (good + "\n{bad json\n", 2, None, "bad JSON"),
        ("", None, None, "empty file"),
    ]
    for text, line, field, problem in cases:
        path.write_text(text)
        with pytest.raises(DataError, match=problem) as e:
            load(tmp_path, "train")
        assert (e.value.path, e.value.line, e.value.field) == (str(path), line, field)


def test_malformed_test_file_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "paper_splits").mkdir()
    path = tmp_path / "paper_splits" / "test_gsm8k.json"
    row = {"question": "Q", "answer": "1", "cot": "The answer is 1.", "consistency_id": 1}
    path.write_text(json.dumps([{**row, "label": True}, {**row, "label": "yes please"}], indent=1))
    with pytest.raises(DataError, match="expected true/false") as e:
        load(tmp_path, "test")
    assert (e.value.line, e.value.field) == (9, "label")  # where its object starts
    path.write_text(json.dumps([{k: v for k, v in row.items() if k != "cot"} | {"label": 1}]))
    with pytest.raises(DataError, match="missing") as e:
        load(tmp_path, "test")
    assert (e.value.line, e.value.field) == (1, "cot")
