"""Pairwise comparisons in both orders, twinned by content (alpaca and
truthfulqa-preference): "is the first response better than the second?", once per order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from icm.data.readers import parse_bool, read_json_records, req_str
from icm.errors import DataError
from icm.testbeds.base import ClaimTable, RelationKindName
from icm.testbeds.claim_groups import ClaimDraft, ClaimTableBuilder, by_content, numbered_ids


def paper_note(testbed: str) -> str:
    return (
        f"--consistency paper: {testbed}'s consistency relations come from GOLD labels (the "
        "original code keys each pair 'A>B' if its gold label is true, else 'B>A'); the "
        "search is told the answer key through them, so these labels are NOT unsupervised"
    )


@dataclass(frozen=True)
class PairRow:
    """One order of a comparison: is `first` better than `second`?"""

    question: str
    first: str
    second: str
    gold: bool
    source: str  # "file:line"


def read_paper_pairs(path: Path) -> list[PairRow]:
    """question, choice, choice_2, label rows of a paper comparison file."""
    out: list[PairRow] = []
    for line, row in read_json_records(path):
        if "label" not in row or row["label"] is None:
            raise DataError("missing", path=path, line=line, field="label")
        out.append(
            PairRow(
                question=req_str(row, "question", path=path, line=line),
                first=req_str(row, "choice", path=path, line=line),
                second=req_str(row, "choice_2", path=path, line=line),
                gold=parse_bool(row["label"], "label", path=path, line=line),
                source=f"{path.name}:{line}",
            )
        )
    if not out:
        raise DataError("no claims (an empty JSON array)", path=path)
    return out


def pair_twins(rows: Iterable[PairRow]) -> tuple[list[list[PairRow]], list[str]]:
    """Rows grouped with their order-swapped twin by content (question + the two answers
    swapped); rows without a twin stay alone, repeated rows are dropped. Also notes."""
    by_content: dict[tuple[str, str, str], PairRow] = {}
    dropped = 0
    for r in rows:
        key = (r.question, r.first, r.second)
        if key in by_content or r.first == r.second:
            dropped += 1
            continue
        by_content[key] = r
    groups: list[list[PairRow]] = []
    done: set[tuple[str, str, str]] = set()
    alone = 0
    for key, r in by_content.items():
        if key in done:
            continue
        twin_key = (r.question, r.second, r.first)
        done.add(key)
        if twin_key in by_content:
            done.add(twin_key)
            groups.append([r, by_content[twin_key]])
        else:
            alone += 1
            groups.append([r])
    notes = []
    if dropped:
        notes.append(f"dropped {dropped} repeated row(s) or row(s) comparing an answer to itself")
    if alone:
        notes.append(f"{alone} row(s) have no order-swapped twin and no relation")
    return groups, notes


def build_pair_table(
    name: str,
    split: str,
    groups: list[list[PairRow]],
    render: Callable[[PairRow], str],
    consistency: str,
    notes: list[str],
) -> ClaimTable:
    paper = consistency == "paper"

    def twins(first: PairRow, second: PairRow) -> RelationKindName:
        if paper:
            # The gold-derived keys: equal keys must share a label; for the comparison
            # keys 'A>B' != 'B>A' the original counts both True AND both False as a
            # contradiction (pick_two_inconsistent_claims), i.e. OPPOSITE.
            return "same" if first.gold == second.gold else "opposite"
        return "opposite"

    def draft(r: PairRow) -> ClaimDraft:
        # first/second: which response this claim says is better (for exports)
        fields = {"question": r.question, "first": r.first, "second": r.second, "source": r.source}
        return ClaimDraft(render(r), r.gold, fields)

    builder = ClaimTableBuilder(name, split)
    for i, members in enumerate(groups):
        # Files list one order first (in truthfulqa-preference always the true one): order
        # and ids come from content, so neither carries the label.
        builder.add_group(
            f"p{i}",
            members,
            draft,
            ids=numbered_ids(f"{split}-p{i}", len(members)),
            order=by_content(lambda r: (r.first, r.second), salt=members[0].question),
            pairs=twins,
            list_as_given=paper,
        )
    return builder.table([*notes, paper_note(name)] if paper else notes, structure_uses_gold=paper)
