"""truthfulqa: is this answer to a TruthfulQA question true? (the paper's splits)

Rows come from the ICM paper's prepared splits (paper_splits/{train,test}_truthfulqa.json:
question, choice, label, consistency_id). Without them, `train`/`test` fall back to the
same construction from truthfulqa/TruthfulQA.csv (also available as `csv-train`/`csv-test`).

Consistency. Each question's group mixes several true and several false answers (in the
paper's train split: 2+2 in 308 groups, 1+3 in 187, 3+1 in 113, all false in 31, all true
in 13), so answers are neither exclusive nor implied by one another, and no relation
between two different answers holds by construction. The only one that does is "two
identical answers to one question share a label" (SAME); it never fires on these files
(no group repeats an answer, even ignoring case and punctuation), so the default search
is driven by mutual predictability alone.

`--consistency paper` reproduces the original code, which keys each claim 'A' if its GOLD
label is true else 'B': answers with the same gold label are SAME, answers with different
gold labels are AT_MOST_ONE_TRUE. That hands the answer key to the search; the table says
so (structure_uses_gold, and a note printed by `icm run`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from icm.data.data_dir import data_file, has_data_file
from icm.data.readers import parse_bool, read_csv_records, read_json_records, req_id, req_str
from icm.errors import DataError
from icm.testbeds import register_testbed
from icm.testbeds.base import CLAIM_TEMPLATE, ClaimTable, LoadOptions, RelationKindName, Testbed
from icm.testbeds.claim_groups import (
    ClaimDraft,
    ClaimTableBuilder,
    by_content,
    group_by,
    numbered_ids,
)
from icm.testbeds.shared_rows import content_order, in_test_split

PAPER_FILES = {
    "train": "paper_splits/train_truthfulqa.json",
    "test": "paper_splits/test_truthfulqa.json",
}
CSV_FILE = "truthfulqa/TruthfulQA.csv"
CSV_TEST_FRACTION = 0.2  # the paper's split is 652 / 144 questions (18% test)
CSV_PER_SIDE = 2  # up to 2 correct + 2 incorrect answers per question, like the paper's train

DEFAULT_NOTE = (
    "no consistency relations: each question has several true and several false answers, "
    "so no relation between two different answers holds by construction; mutual "
    "predictability alone drives the search (--consistency paper: the original code's "
    "gold-derived relations)"
)
PAPER_NOTE = (
    "--consistency paper: the consistency relations come from GOLD labels (the original "
    "code keys each claim 'A' if its gold label is true, else 'B'), so the search is told "
    "which answers share a truth value; these labels are NOT unsupervised"
)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    gold: bool
    group: str  # the question's key in its source
    source: str  # "path:line"


def normalize_answer(text: str) -> str:
    """Case, spacing and final punctuation do not change what an answer says."""
    t = re.sub(r"\s+", " ", text).strip().lower()
    return t.rstrip(" .!").strip("\"' ")


def read_paper_split(path: Path) -> list[Answer]:
    out: list[Answer] = []
    for line, row in read_json_records(path):
        out.append(
            Answer(
                question=req_str(row, "question", path=path, line=line),
                answer=req_str(row, "choice", path=path, line=line),
                gold=_label(row, path, line),
                group=req_id(row, "consistency_id", path=path, line=line),
                source=f"{path.name}:{line}",
            )
        )
    if not out:
        raise DataError("no claims (an empty JSON array)", path=path)
    return out


def _label(row: dict, path: Path, line: int) -> bool:
    if "label" not in row or row["label"] is None:
        raise DataError("missing", path=path, line=line, field="label")
    return parse_bool(row["label"], "label", path=path, line=line)


def _split_answers(cell: str) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip()]


def read_csv_split(path: Path, split: str) -> list[Answer]:
    """The paper's construction from TruthfulQA.csv: per question, up to two correct and
    two incorrect answers, picked by a content hash; a fixed 20% of questions is test."""
    required = ["Question", "Best Answer", "Correct Answers", "Incorrect Answers"]
    out: list[Answer] = []
    for line, row in read_csv_records(path, required=required):
        question = req_str(row, "Question", path=path, line=line).strip()
        if in_test_split(question, CSV_TEST_FRACTION, salt="truthfulqa") != (split == "test"):
            continue
        correct = [req_str(row, "Best Answer", path=path, line=line).strip()]
        correct += _split_answers(req_str(row, "Correct Answers", path=path, line=line))
        incorrect = _split_answers(req_str(row, "Incorrect Answers", path=path, line=line))
        if row.get("Best Incorrect Answer", "").strip():
            incorrect.insert(0, row["Best Incorrect Answer"].strip())
        # An answer listed as both correct and incorrect (2 questions do this) is dropped.
        both = {normalize_answer(a) for a in correct} & {normalize_answer(a) for a in incorrect}
        for gold, answers in ((True, correct), (False, incorrect)):
            unique: dict[str, str] = {}
            for a in answers:
                unique.setdefault(normalize_answer(a), a)
            kept = [a for k, a in unique.items() if k not in both]
            for a in content_order(kept, lambda a: a, salt=question)[:CSV_PER_SIDE]:
                out.append(Answer(question, a, gold, str(line), f"{path.name}:{line}"))
    return out


def build_table(
    name: str, split: str, answers: list[Answer], consistency: str, notes: list[str]
) -> ClaimTable:
    paper = consistency == "paper"

    def relation(first: Answer, second: Answer) -> RelationKindName | None:
        if paper:  # the gold-derived keys
            return "same" if first.gold == second.gold else "at_most_one_true"
        if normalize_answer(first.answer) == normalize_answer(second.answer):
            return "same"
        return None

    def draft(a: Answer) -> ClaimDraft:
        prompt = CLAIM_TEMPLATE.format(question=a.question, claim=a.answer)
        return ClaimDraft(
            prompt, a.gold, {"question": a.question, "answer": a.answer, "source": a.source}
        )

    builder = ClaimTableBuilder(name, split)
    for gkey, members in group_by(answers, lambda a: a.group).items():
        # The paper files list true answers first: order (and so ids) by content instead.
        builder.add_group(
            f"q{gkey}",
            members,
            draft,
            ids=numbered_ids(f"{split}-q{gkey}", len(members)),
            order=by_content(lambda a: a.answer, salt=gkey),
            pairs=relation,
            list_as_given=paper,
        )
    if paper:
        notes = [*notes, PAPER_NOTE]
    elif consistency == "default" and not builder.relations:
        notes = [*notes, DEFAULT_NOTE]
    return builder.table(notes, structure_uses_gold=paper)


@register_testbed
class TruthfulQA(Testbed):
    name = "truthfulqa"
    version = 1
    summary = "is this answer to a TruthfulQA question true? (the paper's splits)"
    source = (
        "paper_splits/{train,test}_truthfulqa.json (the ICM paper's splits); "
        "fallback and csv-*: truthfulqa/TruthfulQA.csv"
    )
    license = "Apache-2.0 (TruthfulQA)"
    template = CLAIM_TEMPLATE
    consistency_rule = (
        "default: none between different answers (each question has several true and several "
        "false answers); identical answers to one question are SAME (never occurs). "
        "paper: the original code's GOLD-derived keys (same gold label SAME, different "
        "AT_MOST_ONE_TRUE); the run says it uses gold labels"
    )
    splits = ("train", "test", "csv-train", "csv-test")
    consistency_modes = ("default", "none", "paper")

    def load_split(self, split: str, options: LoadOptions) -> ClaimTable:
        notes: list[str] = []
        base = split.removeprefix("csv-")
        if split.startswith("csv-") or not has_data_file(options.data_dir, PAPER_FILES[base]):
            if not split.startswith("csv-"):
                notes.append(
                    f"{PAPER_FILES[base]} not found: built the {base} split from {CSV_FILE} "
                    "(the paper's construction, not its exact questions)"
                )
            answers = read_csv_split(data_file(options.data_dir, CSV_FILE), base)
        else:
            answers = read_paper_split(data_file(options.data_dir, PAPER_FILES[base]))
            if base == "test" and has_data_file(options.data_dir, PAPER_FILES["train"]):
                train_q = {
                    a.question.strip()
                    for a in read_paper_split(data_file(options.data_dir, PAPER_FILES["train"]))
                }
                leaked = sorted({a.question for a in answers if a.question.strip() in train_q})
                if leaked:
                    answers = [a for a in answers if a.question.strip() not in train_q]
                    notes.append(
                        f"removed {len(leaked)} test question(s) that also occur in the train "
                        f"split: {'; '.join(repr(q) for q in leaked[:3])}"
                    )
        return build_table(self.name, split, answers, options.consistency, notes)
