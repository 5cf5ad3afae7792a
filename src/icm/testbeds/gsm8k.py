"""gsm8k: is this worked solution to a grade-school math problem correct? (verification)

test: the paper's split, paper_splits/test_gsm8k.json (743 GSM8K test questions x 4
solutions: `cot` is the claim, `answer` its final answer). train: the paper's train split
is not public, so it is built from gsm8k/train.jsonl (disjoint from every test question):
per question, the gold solution (true) and three incorrect ones made by perturbations
documented in docs/testbeds.md:

- arithmetic slip: one calculator step <<expr=r>> gets a wrong result (r +- 1 or +- 10),
  and every later step that uses it is recomputed, so the error reaches the final answer;
  made at two different steps where the solution has two;
- wrong final answer: the correct chain, then "The answer is X" with X an intermediate
  result of the chain (stopping a step early) or a near miss.

A perturbation is kept only if its final answer differs from the gold answer, so its
label (false) holds by construction.

Consistency, by final answer within a question: the same final answer -> SAME; different
final answers -> AT_MOST_ONE_TRUE (a GSM8K question has one correct answer). Answers are
compared as numbers ("$1,200", "1200" and "1200.0" are one answer); `--consistency paper`
compares the raw strings, as the original code does.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from icm.data.data_dir import data_file
from icm.data.readers import (
    file_key,
    get_str,
    parse_bool,
    read_json_records,
    read_jsonl_records,
    req_id,
    req_str,
)
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
from icm.testbeds.shared_rows import stable_hash

TEST_FILE = "paper_splits/test_gsm8k.json"
TRAIN_FILE = "gsm8k/train.jsonl"
WRONG_PER_QUESTION = 3  # two arithmetic slips + one wrong final answer
MAX_SLIP_STEPS = 4  # slips are tried at the last few calculator steps only


@dataclass(frozen=True)
class Solution:
    question: str
    text: str  # the claim: a worked solution ending in "The answer is X."
    answer: str  # its final answer, as written
    gold: bool
    group: str
    kind: str  # gold | reference | sample | arithmetic-slip | wrong-final-answer
    source: str


# --------------------------------------------------------------------------- answers


def answer_key(answer: str) -> str:
    """A final answer as a canonical number ("$1,200.00" -> "1200"), else as lower text."""
    t = answer.strip().rstrip(".").replace("$", "").replace(",", "").replace(" ", "")
    t = t.removesuffix("%")
    try:
        d = Decimal(t)
    except InvalidOperation:
        return answer.strip().lower()
    if not d.is_finite():
        return answer.strip().lower()
    d = d.normalize()
    return format(d.quantize(Decimal(1)) if d == d.to_integral_value() else d, "f")


def format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return text


# --------------------------------------------------------------------------- solutions

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
_OPS: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expr: str) -> Fraction | None:
    """+ - * / and parentheses over decimal numbers, exactly; None if anything else."""
    try:
        tree = ast.parse(expr.replace(",", "").strip(), mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(expr)

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError):
        return None


@functools.lru_cache(maxsize=65536)
def to_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def render_solution(lines: list[str], final: str) -> str:
    """The paper's rendering of a GSM8K solution: calculator annotations and dollar signs
    removed, one sentence per line, then "The answer is X." (as in test_gsm8k.json)."""
    out = []
    for line in lines:
        t = _ANNOTATION.sub("", line).replace("$", "").strip()
        if not t:
            continue
        out.append(t if t[-1] in ".!?:" else t + ".")
    return " ".join([*out, f"The answer is {final}."])


def parse_gold(text: str, *, path: Path, line: int) -> tuple[list[str], str]:
    """The lines of a GSM8K `answer` and its final answer (after '####')."""
    body, sep, final = text.rpartition("####")
    if not sep or not final.strip():
        raise DataError("no final answer ('#### <number>')", path=path, line=line, field="answer")
    return body.strip().split("\n"), final.strip()


def arithmetic_slip(
    lines: list[str], final: str, step: int, delta: int
) -> tuple[list[str], str] | None:
    """The solution with calculator step `step` off by `delta`, propagated downstream.

    Later steps whose expressions use a changed result are recomputed; later text that
    repeats a changed number is rewritten. None if the final answer does not change."""
    changed: dict[Fraction, Fraction] = {}
    k = -1
    out: list[str] = []

    def swap(text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            v = to_number(m.group(0))
            return format_number(changed[v]) if v in changed else m.group(0)

        return _NUMBER.sub(sub, text)

    for line in lines:
        pieces: list[str] = []
        pos = 0
        for m in _ANNOTATION.finditer(line):
            k += 1
            before = line[pos : m.start()]
            expr, result = m.group(1), m.group(2)
            old = to_number(result)
            after_start = m.end()
            # The visible result follows the annotation: "= <<3*25=75>>75 roses".
            vis = re.match(r"\s*\$?\s*(\d+(?:,\d{3})*(?:\.\d+)?)", line[after_start:])
            new: Fraction | None = old
            if old is not None and k == step:
                new = old + delta
                if new < 0:
                    return None
            elif old is not None and k > step and changed:
                # A later step that uses a changed number is recomputed from it.
                new_expr = swap(expr)
                value = evaluate(new_expr) if new_expr != expr else None
                new = value if value is not None else old
                expr = new_expr
            pieces.append(swap(before) if k > step else before)
            if new is None or old is None or new == old:
                pieces.append(m.group(0))
                pos = after_start
                continue
            changed[old] = new
            pieces.append(f"<<{expr}={format_number(new)}>>")
            if vis:
                pieces.append(line[after_start : after_start + vis.start(1)])
                pieces.append(format_number(new))
                pos = after_start + vis.end(1)
            else:
                pos = after_start
        tail = line[pos:]
        pieces.append(swap(tail) if k >= step and changed else tail)
        out.append("".join(pieces))
    gold_value = to_number(final)
    if gold_value is None or gold_value not in changed:
        return None
    if changed[gold_value] < 0 <= gold_value:  # a negative count reads as absurd, not wrong
        return None
    return out, format_number(changed[gold_value])


def step_results(lines: list[str]) -> list[Fraction]:
    out = []
    for line in lines:
        for m in _ANNOTATION.finditer(line):
            v = to_number(m.group(2))
            if v is not None:
                out.append(v)
    return out


def perturb(
    question: str, lines: list[str], final: str, n: int
) -> list[tuple[str, list[str], str]]:
    """Up to n incorrect solutions (kind, lines, final answer) with distinct final answers
    that all differ from the gold one. Deterministic: choices come from a content hash."""
    h = stable_hash("gsm8k", question)
    gold_key = answer_key(final)
    seen = {gold_key}
    out: list[tuple[str, list[str], str]] = []
    n_steps = len(step_results(lines))
    # Arithmetic slips at different steps, later steps first (they reach the answer).
    steps = list(range(n_steps))[::-1][:MAX_SLIP_STEPS]
    deltas = [1, -1, 10, -10] if h % 2 else [-1, 1, -10, 10]
    for step in steps:
        if len([o for o in out if o[0] == "arithmetic-slip"]) >= n - 1:
            break
        for d in deltas[h % 4 :] + deltas[: h % 4]:
            slipped = arithmetic_slip(lines, final, step, d)
            if slipped and answer_key(slipped[1]) not in seen:
                seen.add(answer_key(slipped[1]))
                out.append(("arithmetic-slip", slipped[0], slipped[1]))
                break
    # A wrong final answer on the correct chain: an intermediate result, else a near miss.
    gold_value = to_number(final)
    candidates = [format_number(v) for v in step_results(lines)[::-1]]
    if gold_value is not None:
        candidates += [format_number(gold_value + d) for d in (1, 10, -1, 2) if gold_value + d > 0]
    for c in candidates:
        if len(out) >= n:
            break
        if answer_key(c) not in seen:
            seen.add(answer_key(c))
            out.append(("wrong-final-answer", lines, c))
            break
    return out[:n]


def read_train(path: Path, wrong_per_question: int) -> list[Solution]:
    return list(_read_train(*file_key(path), wrong_per_question))


@functools.lru_cache(maxsize=4)
def _read_train(name: str, size: int, mtime: int, wrong_per_question: int) -> tuple[Solution, ...]:
    path = Path(name)
    out: list[Solution] = []
    for line, row in read_jsonl_records(path):
        question = req_str(row, "question", path=path, line=line)
        lines, final = parse_gold(
            req_str(row, "answer", path=path, line=line), path=path, line=line
        )
        group = str(line)
        src = f"{path.name}:{line}"
        out.append(
            Solution(question, render_solution(lines, final), final, True, group, "gold", src)
        )
        for kind, wrong_lines, wrong_final in perturb(question, lines, final, wrong_per_question):
            text = render_solution(wrong_lines, wrong_final)
            out.append(Solution(question, text, wrong_final, False, group, kind, src))
    return tuple(out)


def read_test(path: Path) -> list[Solution]:
    out: list[Solution] = []
    for line, row in read_json_records(path):
        if "label" not in row or row["label"] is None:
            raise DataError("missing", path=path, line=line, field="label")
        gold = parse_bool(row["label"], "label", path=path, line=line)
        # label is 1 (an int) exactly on the reference solutions the paper added.
        kind = "sample" if isinstance(row["label"], bool) else "reference"
        out.append(
            Solution(
                question=req_str(row, "question", path=path, line=line),
                text=req_str(row, "cot", path=path, line=line).strip(),
                answer=get_str(row, "answer", path=path, line=line, allow_empty=True) or "",
                gold=gold,
                group=req_id(row, "consistency_id", path=path, line=line),
                kind=kind,
                source=f"{path.name}:{line}",
            )
        )
    if not out:
        raise DataError("no claims (an empty JSON array)", path=path)
    return out


def build_table(
    name: str,
    split: str,
    solutions: list[Solution],
    consistency: str,
    notes: list[str],
    *,
    correct_answer_included: bool = False,
) -> ClaimTable:
    """`correct_answer_included`: every question's claims hold its gold solution by
    construction (the built train split), so at least one of them is true."""
    key = (lambda a: a) if consistency == "paper" else answer_key  # paper: raw, as the original

    def by_answer(first: Solution, second: Solution) -> RelationKindName:
        return "same" if key(first.answer) == key(second.answer) else "at_most_one_true"

    def draft(s: Solution) -> ClaimDraft:
        prompt = CLAIM_TEMPLATE.format(question=s.question, claim=s.text)
        return ClaimDraft(prompt, s.gold, {"answer": s.answer, "kind": s.kind, "source": s.source})

    builder = ClaimTableBuilder(name, split)
    for gkey, members in group_by(solutions, lambda s: s.group).items():
        # Gold first in the source: order (and ids) by content instead.
        builder.add_group(
            f"q{gkey}",
            members,
            draft,
            ids=numbered_ids(f"{split}-q{gkey}", len(members)),
            order=by_content(lambda s: s.text, salt=gkey),
            pairs=by_answer,
            at_least_one_true=correct_answer_included and consistency != "paper",
            list_as_given=consistency == "paper",
        )
    return builder.table(notes)


@register_testbed
class GSM8K(Testbed):
    name = "gsm8k"
    version = 1
    summary = "is this worked solution to a GSM8K math problem correct? (verification)"
    source = (
        "test: paper_splits/test_gsm8k.json (the paper's); train: built from "
        "gsm8k/train.jsonl (gold solution + perturbed incorrect ones)"
    )
    license = "MIT (GSM8K)"
    template = CLAIM_TEMPLATE
    consistency_rule = (
        "by final answer within a question: same answer SAME, different answers "
        "AT_MOST_ONE_TRUE (one correct answer per question); on the built train split, where "
        "the gold solution is among the claims, also AT_LEAST_ONE_TRUE per question"
    )
    consistency_modes = ("default", "none", "paper")
    wrong_per_question = WRONG_PER_QUESTION

    def load_split(self, split: str, options: LoadOptions) -> ClaimTable:
        notes: list[str] = []
        if split == "test":
            solutions = read_test(data_file(options.data_dir, TEST_FILE))
        else:
            solutions = read_train(data_file(options.data_dir, TRAIN_FILE), self.wrong_per_question)
            notes.append(
                "train split built from gsm8k/train.jsonl: gold solutions plus perturbed "
                "incorrect ones (the paper's train_gsm8k.json is not public); each question's "
                "claims include its gold solution, so at least one is true (a group constraint)"
            )
        if options.consistency == "paper":
            notes.append("--consistency paper: final answers compared as raw strings")
        return build_table(
            self.name,
            split,
            solutions,
            options.consistency,
            notes,
            correct_answer_included=split == "train",
        )
