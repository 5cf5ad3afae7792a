"""Row helpers shared by several testbeds, so that no testbed imports another:

- seed-independent splits and orders by content, so that neither a claim's split, its
  position nor its id can carry its gold label (stable_hash, in_test_split,
  content_order, listing_order, shuffled_within_groups);
- the data files and CSV rows of the moral testbeds (data_root, Row, text_field;
  the files themselves: icm.data.data_dir.data_file);
- pairwise comparisons in both orders, twinned by content (PairRow, read_paper_pairs,
  pair_twins, build_pair_table): alpaca and truthfulqa-preference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icm.data.data_dir import resolve_data_dir
from icm.data.readers import Record, parse_bool, read_json_records, req_str
from icm.errors import DataError
from icm.testbeds.base import ClaimRecord, ClaimTable, LoadOptions, RelationRecord

# --------------------------------------------------------------------------- order


def stable_hash(*parts: str) -> int:
    """A seed-independent 64-bit hash (Python's hash() changes between processes)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def in_test_split(key: str, test_fraction: float, *, salt: str) -> bool:
    """A fixed split by content: the same question lands in the same split forever."""
    return stable_hash(salt, key) < test_fraction * 2**64


def content_order(items: Sequence[Any], key: Any, *, salt: str = "") -> list[Any]:
    """Items sorted by a hash of their content, so that neither their position nor an id
    built from it can carry the gold label (the paper files list true answers first)."""
    return sorted(items, key=lambda it: (stable_hash(salt, str(key(it))), str(key(it))))


def listing_order(
    pairs: Sequence[tuple[str, Any]], file_order: Sequence[Any], consistency: str
) -> list[tuple[str, Any]]:
    """The (id, row) pairs of one consistency group in the order the table lists them.
    Ids come from content_order in every mode. The default keeps that content order, so
    that a claim's position cannot carry its label (several paper files list the true
    claim first in every group). `--consistency paper` lists the rows in the file's order,
    as the original code does (its batches and demonstrations keep the file order within
    a group); that mode already derives its relations from gold labels."""
    if consistency != "paper":
        return list(pairs)
    position = {id(row): i for i, row in enumerate(file_order)}
    return sorted(pairs, key=lambda pair: position[id(pair[1])])


def shuffled_within_groups(
    claims: list[ClaimRecord], salt: str, *, renumber: bool = False
) -> list[ClaimRecord]:
    """Groups stay in file order, claims inside a group get a stable pseudo-random order.

    The source files often list the right answer first in its group (ETHICS virtue: the
    fitting trait is the first candidate for 82% of test sentences); the order must not
    carry that signal into batches or logs. With `renumber`, ids become `<group>-<k>` in
    the new order, so that sorting by id does not restore the file order either (the
    source row stays in the claim's fields).
    """
    first: dict[str, int] = {}
    for c in claims:
        first.setdefault(c.group, len(first))
    out = sorted(
        claims,
        key=lambda c: (first[c.group], hashlib.sha256(f"{salt}/{c.id}".encode()).digest()),
    )
    if not renumber:
        return out
    seen: dict[str, int] = {}
    renamed = []
    for c in out:
        k = seen.get(c.group, 0)
        seen[c.group] = k + 1
        renamed.append(ClaimRecord(f"{c.group}-{k}", c.prompt, c.group, c.gold, c.fields))
    return renamed


# --------------------------------------------------------------------------- moral testbeds' files


def data_root(options: LoadOptions) -> Path | None:
    """DATA_DIR: --data-dir, ICM_DATA_DIR, or the `icm data fetch` cache."""
    return resolve_data_dir(options.data_dir)


Row = Record  # (1-based line where the record starts, cells by column)


def text_field(row: Row, name: str, path: Path) -> str:
    value = row[1][name].strip()
    if not value:
        raise DataError("empty", path=path, line=row[0], field=name)
    return value


# --------------------------------------------------------------------------- pairs


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
    claims: list[ClaimRecord] = []
    relations: list[RelationRecord] = []
    for i, members in enumerate(groups):
        # Files list one order first (in truthfulqa-preference always the true one): order
        # and ids come from content, so neither carries the label.
        in_file = members
        members = content_order(members, lambda r: (r.first, r.second), salt=members[0].question)
        ids = [f"{split}-p{i}-{k}" for k in range(len(members))]
        for cid, r in listing_order(list(zip(ids, members, strict=True)), in_file, consistency):
            claims.append(
                ClaimRecord(
                    id=cid,
                    prompt=render(r),
                    group=f"p{i}",
                    gold=r.gold,
                    # first/second: which response this claim says is better (for exports)
                    fields={
                        "question": r.question,
                        "first": r.first,
                        "second": r.second,
                        "source": r.source,
                    },
                )
            )
        if len(members) == 2:
            if consistency == "paper":
                # The gold-derived keys: equal keys must share a label; for the
                # comparison keys 'A>B' != 'B>A' the original counts both True AND both
                # False as a contradiction (pick_two_inconsistent_claims), i.e. OPPOSITE.
                same = members[0].gold == members[1].gold
                relations.append(RelationRecord("same" if same else "opposite", ids[0], ids[1]))
            else:
                relations.append(RelationRecord("opposite", ids[0], ids[1]))
    paper = consistency == "paper"
    return ClaimTable(
        name,
        split,
        claims,
        relations,
        notes=[*notes, paper_note(name)] if paper else notes,
        structure_uses_gold=paper,
    )
