"""Your own claims: `icm run --testbed path/to/claims.jsonl` (or .csv).

The schema (docs/testbeds.md, "Your own data"; example: examples/custom_claims.jsonl).
One claim per JSONL line (a JSON object) or per CSV row (a header names the columns):

    id          optional; a string or integer, unique in the file (default: "line<N>")
    question    optional; with it the claim renders as the paper's template
                "Question: {question}\\nClaim: {claim}\\nI think this claim is "
    claim       the claim text; without a question it renders as
                "Claim: {claim}\\nI think this claim is "
    prompt      instead of question+claim: the full prompt, used verbatim
    group       optional consistency group (claims of one group are batched together)
    label       optional gold label: true/false (or 1/0; in CSV also yes/no). Used ONLY
                for reporting agreement; the search never sees it
    same, opposite, at_most_one_true
                optional relations from this claim to other claim ids: one id or a list
                (JSON), ids separated by ';' (CSV)

A JSONL line can also be a relation on its own:
    {"relation": "opposite", "a": "c1", "b": "c2"}
    {"relation": "at_most_one_true", "group": "q1"}     (every pair of the group; also
                                                         same; opposite: 2 claims only)
    {"relation": "at_least_one_true", "group": "q1"}    (not all of the group false)
    {"relation": "exactly_one_true", "group": "q1"}     (both of the above)

Relations must hold by construction (e.g. two answers to one question cannot both be
true); relations derived from gold labels leak the answer into the search.
Every malformed input stops with a DataError naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icm.data.readers import (
    Record,
    get_str,
    parse_bool,
    read_csv_records,
    read_json_records,
    read_jsonl_records,
    req_id,
)
from icm.errors import ConfigError, DataError, did_you_mean
from icm.testbeds.base import (
    CLAIM_TEMPLATE,
    RELATION_KINDS,
    ClaimRecord,
    ClaimTable,
    GroupConstraintRecord,
    LoadOptions,
    RelationRecord,
)

CLAIM_ONLY_TEMPLATE = "Claim: {claim}\nI think this claim is "
KINDS = tuple(RELATION_KINDS)  # same, at_most_one_true, opposite
GROUP_ONLY_KINDS = ("at_least_one_true", "exactly_one_true")  # over a whole group
CLAIM_KEYS = ("id", "question", "claim", "prompt", "group", "label", *KINDS)
RELATION_KEYS = ("relation", "a", "b", "group")
# Other formats' names for our fields (the paper's data files, the Python API): kept as
# metadata they meant nothing, and a run went on without groups or gold labels.
MISNAMED = {
    "consistency_id": "group",
    "consistency_group": "group",
    "group_id": "group",
    "gold": "label",
    "gold_label": "label",
}


@dataclass(frozen=True)
class _Rel:
    kind: str
    a: str
    b: str
    line: int
    field: str  # the field that names b
    a_field: str = "id"  # the field that names a


def read_records(path: Path) -> list[Record]:
    if not path.is_file():
        raise DataError("not found" if not path.exists() else "not a file", path=path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".jsonl.gz"):
        return read_jsonl_records(path)
    if suffix == ".json":
        return read_json_records(path)
    if suffix == ".csv":
        records = read_csv_records(path)
        columns = set(records[0][1]) if records else set()
        if records and not columns & {"claim", "prompt"}:
            raise DataError(
                "missing column: a claims CSV needs a 'claim' (or 'prompt') column",
                path=path,
                line=1,
                field="claim",
            )
        return records
    raise DataError(
        f"unsupported file type '{path.suffix}': give a .jsonl, .json or .csv file", path=path
    )


def load_claims_file(path: Path, options: LoadOptions | None = None) -> ClaimTable:
    options = options or LoadOptions()
    if options.consistency not in ("default", "none"):
        raise ConfigError(
            f"--consistency: a claims file offers 'default' (its own relations) or 'none', "
            f"not '{options.consistency}'"
        )
    parsed = _read_claims_file(path)
    group_constraints = _expand_group_relations(parsed, path)
    relations = _checked_relations(parsed, path)
    notes: list[str] = []
    unlabeled = sum(c.gold is None for c in parsed.claims)
    if unlabeled:
        notes.append(
            f"{unlabeled} of {len(parsed.claims)} claims have no gold label (not reported)"
        )
    table = ClaimTable(
        path.name, "all", parsed.claims, relations, notes=notes, group_constraints=group_constraints
    )
    if options.consistency == "none":
        table = ClaimTable(
            path.name,
            "all",
            parsed.claims,
            [],
            notes=[*notes, "consistency relations removed (--consistency none)"],
        )
    return table.sample_groups(options.size, options.seed)


@dataclass
class _ClaimsFile:
    """A claims file as read: its claims, and its relations before they are checked."""

    claims: list[ClaimRecord] = field(default_factory=list)
    first_line: dict[str, int] = field(default_factory=dict)  # claim id -> line
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> claim ids
    rels: list[_Rel] = field(default_factory=list)
    group_rels: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, group, line)


def _read_claims_file(path: Path) -> _ClaimsFile:
    is_csv = path.suffix == ".csv"
    out = _ClaimsFile()
    for line, row in read_records(path):
        if "relation" in row and not is_csv:
            _relation_line(row, path, line, out.rels, out.group_rels)
            continue
        claim = _claim(row, path, line, is_csv)
        if claim.id in out.first_line:
            raise DataError(
                f"duplicate id '{claim.id}' (first on line {out.first_line[claim.id]})",
                path=path,
                line=line,
                field="id",
            )
        out.first_line[claim.id] = line
        out.claims.append(claim)
        out.groups.setdefault(claim.group, []).append(claim.id)
        for kind in KINDS:
            for other in _ids(row.get(kind), kind, path, line, is_csv):
                out.rels.append(_Rel(kind, claim.id, other, line, kind))
    if not out.claims:
        raise DataError("no claims (only relations, or nothing)", path=path)
    return out


def _expand_group_relations(parsed: _ClaimsFile, path: Path) -> list[GroupConstraintRecord]:
    """A relation over a group becomes pairwise relations (added to parsed.rels) and, for
    at_least_one_true / exactly_one_true, a group constraint (returned)."""
    group_constraints: list[GroupConstraintRecord] = []
    for kind, group, line in parsed.group_rels:
        if group not in parsed.groups or not group:
            raise DataError(f"unknown group '{group}'", path=path, line=line, field="group")
        ids = parsed.groups[group]
        if kind == "opposite" and len(ids) != 2:
            # Three claims cannot be pairwise opposite: the relation could never hold.
            raise DataError(
                f"'opposite' over group '{group}' of {len(ids)} claims: only two claims can "
                "be opposite (for 'exactly one of them is true' use 'exactly_one_true')",
                path=path,
                line=line,
                field="relation",
            )
        if kind in GROUP_ONLY_KINDS:
            group_constraints.append(GroupConstraintRecord("at_least_one_true", tuple(ids)))
            if kind == "at_least_one_true":
                continue
            kind = "at_most_one_true"
        parsed.rels += [
            _Rel(kind, ids[i], ids[j], line, "group")
            for i in range(len(ids))
            for j in range(i + 1, len(ids))
        ]
    return group_constraints


def _checked_relations(parsed: _ClaimsFile, path: Path) -> list[RelationRecord]:
    """The pairwise relations, each once: both ends known and different, no pair both
    'same' and 'opposite'."""
    relations: list[RelationRecord] = []
    seen: dict[tuple[str, str], dict[str, int]] = {}  # pair -> kind -> line
    for r in parsed.rels:
        for end, field_name in ((r.a, r.a_field), (r.b, r.field)):
            if end not in parsed.first_line:
                hint = did_you_mean(end, list(parsed.first_line))
                raise DataError(
                    f"unknown claim id '{end}'.{hint}", path=path, line=r.line, field=field_name
                )
        if r.a == r.b:
            raise DataError(
                f"a relation between claim '{r.a}' and itself",
                path=path,
                line=r.line,
                field=r.field,
            )
        kinds = seen.setdefault((min(r.a, r.b), max(r.a, r.b)), {})
        if r.kind in kinds:
            continue  # stated from both ends, or twice
        clash = {"same": "opposite", "opposite": "same"}.get(r.kind)
        if clash in kinds:
            raise DataError(
                f"claims '{r.a}' and '{r.b}' are both 'same' and 'opposite' (line {kinds[clash]})",
                path=path,
                line=r.line,
                field=r.field,
            )
        kinds[r.kind] = r.line
        relations.append(RelationRecord(r.kind, r.a, r.b))  # type: ignore[arg-type]
    return relations


def _claim(row: dict[str, Any], path: Path, line: int, is_csv: bool) -> ClaimRecord:
    for key, ours in MISNAMED.items():
        if key in row and ours not in row:
            raise DataError(
                f"not a field of a claims file (it would be ignored): did you mean '{ours}'?",
                path=path,
                line=line,
                field=key,
            )
    if is_csv and "relation" in row:
        raise DataError(
            "a CSV has no relation rows: give each claim's relations in its 'same', "
            "'opposite' and 'at_most_one_true' columns (claim ids separated by ';')",
            path=path,
            line=line,
            field="relation",
        )
    for key in row:
        if key not in CLAIM_KEYS and key not in RELATION_KEYS:
            hint = did_you_mean(key, list(CLAIM_KEYS))
            if hint:  # a likely typo; other extra fields are kept as metadata
                raise DataError(f"unknown field.{hint}", path=path, line=line, field=key)
    cid = req_id(row, "id", path=path, line=line) if _present(row.get("id")) else f"line{line}"
    prompt = get_str(row, "prompt", path=path, line=line, optional=True)
    claim = get_str(row, "claim", path=path, line=line, optional=True)
    question = get_str(row, "question", path=path, line=line, optional=True)
    if prompt is not None:
        if claim is not None or question is not None:
            raise DataError(
                "give either 'prompt' or 'question'/'claim', not both",
                path=path,
                line=line,
                field="prompt",
            )
        text = prompt
    elif claim is None:
        raise DataError(
            "missing: give 'claim' (with an optional 'question') or 'prompt'",
            path=path,
            line=line,
            field="claim",
        )
    elif question is not None:
        text = CLAIM_TEMPLATE.format(question=question.strip(), claim=claim.strip())
    else:
        text = CLAIM_ONLY_TEMPLATE.format(claim=claim.strip())
    group = req_id(row, "group", path=path, line=line) if _present(row.get("group")) else ""
    gold = (
        parse_bool(row["label"], "label", path=path, line=line)
        if _present(row.get("label"))
        else None
    )
    extra = {k: v for k, v in row.items() if k not in CLAIM_KEYS}
    return ClaimRecord(id=cid, prompt=text, group=group, gold=gold, fields=extra)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _ids(value: Any, field: str, path: Path, line: int, is_csv: bool) -> list[str]:
    """Claim ids of a relation field: one id or a list (JSON), ';'-separated (CSV)."""
    if not _present(value):
        return []
    if is_csv:
        assert isinstance(value, str)
        return [v.strip() for v in value.split(";") if v.strip()]
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise DataError(
                "expected a claim id (string or integer) or a list of them",
                path=path,
                line=line,
                field=field,
            )
        out.append(str(item).strip())
    return out


def _relation_line(
    row: dict[str, Any],
    path: Path,
    line: int,
    rels: list[_Rel],
    group_rels: list[tuple[str, str, int]],
) -> None:
    kind = row["relation"]
    known = (*KINDS, *GROUP_ONLY_KINDS)
    if not isinstance(kind, str) or kind not in known:
        hint = did_you_mean(str(kind), list(known))
        raise DataError(
            f"unknown relation kind {kind!r}.{hint} Known: {', '.join(known)}",
            path=path,
            line=line,
            field="relation",
        )
    for key in row:
        if key not in RELATION_KEYS:
            raise DataError(
                f"unknown field in a relation line (it has: {', '.join(RELATION_KEYS)})",
                path=path,
                line=line,
                field=key,
            )
    if "group" in row:
        if "a" in row or "b" in row:
            raise DataError(
                "give either 'group' or 'a' and 'b'", path=path, line=line, field="group"
            )
        group_rels.append((kind, req_id(row, "group", path=path, line=line), line))
        return
    if kind in GROUP_ONLY_KINDS:
        raise DataError(
            f"'{kind}' applies to a whole group: give 'group'",
            path=path,
            line=line,
            field="relation",
        )
    a = req_id(row, "a", path=path, line=line)
    b = req_id(row, "b", path=path, line=line)
    rels.append(_Rel(kind, a, b, line, "b", "a"))
