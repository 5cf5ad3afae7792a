"""Your own claims file (JSONL, JSON, CSV): the documented schema, rendering, relations,
and one test per kind of malformed input, each naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icm import cli
from icm.errors import ConfigError, DataError
from icm.testbeds import LoadOptions
from icm.testbeds.custom import load_claims_file
from icm.testbeds.loading import load_table

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_claims.jsonl"


def jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_the_example_file() -> None:
    t = load_claims_file(EXAMPLE)
    assert len(t) == 8 and t.testbed == "custom_claims.jsonl"
    by_id = {c.id: c for c in t.claims}
    assert by_id["boil-100"].prompt == (
        "Question: At sea level, at what temperature does water boil?\n"
        "Claim: Water boils at 100 degrees Celsius.\n"
        "I think this claim is "
    )
    assert by_id["no-question"].prompt == (
        "Claim: The Pacific is the largest ocean on Earth.\nI think this claim is "
    )
    assert by_id["boil-90"].gold is False and by_id["boil-90"].group == "boil"
    rel = {(r.kind, frozenset((r.a, r.b))) for r in t.relations}
    assert rel == {
        ("at_most_one_true", frozenset(("boil-100", "boil-90"))),
        ("at_most_one_true", frozenset(("boil-100", "boil-120"))),
        ("at_most_one_true", frozenset(("boil-90", "boil-120"))),
        ("opposite", frozenset(("moon-earth", "earth-moon"))),
        ("same", frozenset(("legs-spider", "legs-spider-8"))),
    }
    # The gold labels satisfy the file's relations (they hold by construction).
    gold = {c.id: c.gold for c in t.claims}
    assert all(gold[r.a] == gold[r.b] for r in t.relations if r.kind == "same")
    assert all(gold[r.a] != gold[r.b] for r in t.relations if r.kind == "opposite")
    # No gold reaches the core.
    assert "True" not in repr([c.prompt for c in t.claims]).replace("Claim", "")


def test_loading_by_path_through_the_testbed_option() -> None:
    t = load_table(str(EXAMPLE), "train", LoadOptions())
    assert len(t) == 8


def test_csv_and_json_give_the_same_table_as_jsonl(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "question": "Q1?", "claim": "Yes.", "group": "g", "label": True},
        {
            "id": "b",
            "question": "Q1?",
            "claim": "No.",
            "group": "g",
            "label": False,
            "opposite": "a",
        },
        {"id": 3, "prompt": "Free-form prompt. Verdict:", "label": 1},
    ]
    a = load_claims_file(jsonl(tmp_path / "c.jsonl", *rows))
    (tmp_path / "c.json").write_text(json.dumps(rows, indent=2))
    b = load_claims_file(tmp_path / "c.json")
    (tmp_path / "c.csv").write_text(
        "id,question,claim,prompt,group,label,opposite\n"
        "a,Q1?,Yes.,,g,true,\n"
        "b,Q1?,No.,,g,FALSE,a\n"
        '3,,,"Free-form prompt. Verdict:",,1,\n'
    )
    c = load_claims_file(tmp_path / "c.csv")
    for t in (b, c):
        assert [(x.id, x.prompt, x.group, x.gold) for x in t.claims] == [
            (x.id, x.prompt, x.group, x.gold) for x in a.claims
        ]
        assert t.relations == a.relations
    assert a.claims[2].prompt == "Free-form prompt. Verdict:" and a.claims[2].id == "3"


def test_defaults_extra_fields_group_relations_size_and_none(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "d.jsonl",
        {"claim": "A.", "group": 1, "source": "mine"},
        {"claim": "B.", "group": 1},
        {"claim": "C.", "group": 2, "label": None},
        {"relation": "at_most_one_true", "group": 1},
    )
    t = load_claims_file(path)
    assert [c.id for c in t.claims] == ["line1", "line2", "line3"]
    assert t.claims[0].fields == {"source": "mine"}
    assert [(r.kind, r.a, r.b) for r in t.relations] == [("at_most_one_true", "line1", "line2")]
    assert any("3 of 3 claims have no gold label" in n for n in t.notes)
    for seed in range(4):  # whole groups: group 1 (two claims) or group 2
        small = load_claims_file(path, LoadOptions(size=1, seed=seed))
        assert {c.id for c in small.claims} in ({"line1", "line2"}, {"line3"})
    none = load_claims_file(path, LoadOptions(consistency="none"))
    assert none.relations == [] and any("--consistency none" in n for n in none.notes)
    with pytest.raises(ConfigError, match="consistency"):
        load_claims_file(path, LoadOptions(consistency="paper"))


def test_relations_stated_from_both_ends_are_kept_once(tmp_path: Path) -> None:
    t = load_claims_file(
        jsonl(
            tmp_path / "b.jsonl",
            {"id": "a", "claim": "A.", "same": ["b"]},
            {"id": "b", "claim": "B.", "same": "a"},
            {"relation": "same", "a": "a", "b": "b"},
        )
    )
    assert [(r.kind, r.a, r.b) for r in t.relations] == [("same", "a", "b")]


GOOD = {"id": "a", "claim": "A."}


@pytest.mark.parametrize(
    ("rows", "line", "field", "problem"),
    [
        (['{"id": "a", "claim": "A."}', '{"id": "b", "claim": '], 2, None, "bad JSON"),
        ([GOOD, '["not", "an", "object"]'], 2, None, "expected a JSON object"),
        ([GOOD, {"id": "b", "question": "Q?"}], 2, "claim", "missing"),
        ([GOOD, {"id": "b", "claim": 42}], 2, "claim", "expected a string"),
        ([GOOD, {"id": "b", "claim": "  "}], 2, "claim", "missing"),
        ([GOOD, {"id": "b", "claim": "B.", "label": "maybe"}], 2, "label", "true/false"),
        ([GOOD, {"id": "b", "claim": "B.", "label": 2}], 2, "label", "true/false"),
        ([GOOD, {"id": ["b"], "claim": "B."}], 2, "id", "string or an integer"),
        ([GOOD, {"id": "b", "claim": "B.", "group": {"x": 1}}], 2, "group", "string or"),
        ([GOOD, {"id": "a", "claim": "B."}], 2, "id", "duplicate id 'a' \\(first on line 1\\)"),
        ([GOOD, {"id": "b", "claim": "B.", "lable": True}], 2, "lable", "Did you mean 'label'"),
        ([GOOD, {"id": "b", "claim": "B.", "prompt": "P"}], 2, "prompt", "not both"),
        ([GOOD, {"relation": "oposite", "a": "a", "b": "a"}], 2, "relation", "unknown relation"),
        ([GOOD, {"relation": 3, "a": "a", "b": "a"}], 2, "relation", "unknown relation"),
        ([GOOD, {"relation": "same", "a": "a"}], 2, "b", "missing"),
        ([GOOD, {"relation": "same", "a": "a", "b": "zz"}], 2, "b", "unknown claim id 'zz'"),
        ([GOOD, {"relation": "same", "a": "zz", "b": "a"}], 2, "a", "unknown claim id 'zz'"),
        ([GOOD, {"relation": "same", "a": "a", "b": "a"}], 2, "b", "itself"),
        ([GOOD, {"relation": "same", "a": "a", "b": "b", "why": 1}], 2, "why", "unknown field"),
        ([GOOD, {"relation": "same", "group": "nope"}], 2, "group", "unknown group"),
        (
            [{"id": "a", "claim": "A.", "opposite": "c"}, {"id": "b", "claim": "B."}],
            1,
            "opposite",
            "unknown claim id 'c'",
        ),
        ([{"id": "a", "claim": "A.", "opposite": [True]}], 1, "opposite", "claim id"),
        (
            [GOOD, {"id": "b", "claim": "B.", "same": "a", "opposite": "a"}],
            2,
            "opposite",
            "both 'same' and 'opposite'",
        ),
        ([{"relation": "same", "a": "a", "b": "b"}], None, None, "no claims"),
        ([], None, None, "empty file"),
    ],
)
def test_malformed_jsonl_names_file_line_and_field(
    tmp_path: Path, rows: list[object], line: int | None, field: str | None, problem: str
) -> None:
    path = jsonl(tmp_path / "claims.jsonl", *rows) if rows else tmp_path / "claims.jsonl"
    if not rows:
        path.write_text("")
    with pytest.raises(DataError, match=problem) as e:
        load_claims_file(path)
    assert (e.value.path, e.value.line, e.value.field) == (str(path), line, field)
    assert str(e.value).startswith(f"{path}:{line}: " if line else f"{path}: ")


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ("id,question\na,Q?\n", 1, "claim", "needs a 'claim'"),
        ("id,claim,label\na,A.,true\nb,B.,perhaps\n", 3, "label", "true/false"),
        ("id,claim\na,A.\nb,B.,extra\n", 3, None, "expected 2 fields"),
        ("id,claim,same\na,A.,b;c\nb,B.,\n", 2, "same", "unknown claim id 'c'"),
        ("id,claim\na,A.\na,B.\n", 3, "id", "duplicate id"),
        ("", None, None, "empty file"),
    ],
)
def test_malformed_csv_names_file_line_and_field(
    tmp_path: Path, text: str, line: int | None, field: str | None, problem: str
) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as e:
        load_claims_file(path)
    assert (e.value.path, e.value.line, e.value.field) == (str(path), line, field)


def test_unsupported_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "claims.txt").write_text("hello")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_claims_file(tmp_path / "claims.txt")
    with pytest.raises(DataError, match="not found") as e:
        load_claims_file(tmp_path / "nope.jsonl")
    assert e.value.path == str(tmp_path / "nope.jsonl")


def test_cli_reports_one_line_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "claims.jsonl", GOOD, {"id": "b", "claim": "B.", "label": "maybe"})
    rc = cli.main(
        ["run", "--testbed", str(path), "--model", "synthetic", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == (
        f"icm: error: {path}:2: field 'label': expected true/false (or 1/0), got \"maybe\""
    )


def test_cli_runs_the_example_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = cli.main(
        [
            "run",
            "--testbed",
            str(EXAMPLE),
            "--model",
            "synthetic",
            "--K",
            "30",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_labeled"] == 8 and metrics["inconsistencies"] == 0


def test_group_constraints_in_a_claims_file(tmp_path: Path) -> None:
    path = tmp_path / "claims.jsonl"
    rows = [
        {"id": f"q1-{k}", "question": "Which?", "claim": f"answer {k}", "group": "q1"}
        for k in range(3)
    ] + [
        {"id": f"q2-{k}", "question": "Which?", "claim": f"option {k}", "group": "q2"}
        for k in range(2)
    ]
    rows.append({"relation": "exactly_one_true", "group": "q1"})
    rows.append({"relation": "at_least_one_true", "group": "q2"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load_claims_file(path)
    assert sorted((r.a, r.b) for r in table.relations) == [
        ("q1-0", "q1-1"),
        ("q1-0", "q1-2"),
        ("q1-1", "q1-2"),
    ]
    assert all(r.kind == "at_most_one_true" for r in table.relations)
    assert [g.members for g in table.group_constraints] == [
        ("q1-0", "q1-1", "q1-2"),
        ("q2-0", "q2-1"),
    ]
    assert table.to_claim_set().n_constraints == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(rows[0])
        + "\n"
        + json.dumps({"relation": "exactly_one_true", "a": "q1-0", "b": "q1-0"})
        + "\n"
    )
    with pytest.raises(
        DataError,
        match=r"bad\.jsonl:2: field 'relation': 'exactly_one_true' applies to a whole group",
    ):
        load_claims_file(bad)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "testbeds.md"


def test_every_relation_kind_has_a_documented_example_that_loads(tmp_path: Path) -> None:
    """docs/testbeds.md shows one small file per relation kind; each must load, and hold
    the structure its text says (checked with the core's inconsistency count)."""
    from icm import _icm_core as core
    from icm.testbeds.custom import GROUP_ONLY_KINDS, KINDS

    section = DOCS.read_text().split("**Relation kinds.**", 1)[1].split("**Evaluating", 1)[0]
    blocks = section.split("```json\n")[1:]
    assert len(blocks) == len(KINDS) + len(GROUP_ONLY_KINDS)
    shown = set()
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.jsonl"
        path.write_text(block.split("```", 1)[0])
        t = load_claims_file(path)
        kinds: set[str] = {r.kind for r in t.relations} | {g.kind for g in t.group_constraints}
        if kinds == {"at_most_one_true", "at_least_one_true"}:
            kinds = {"exactly_one_true"}
        (kind,) = kinds
        shown.add(kind)
        claims = t.to_claim_set()
        all_false = [core.Label.FALSE] * len(t)
        all_true = [core.Label.TRUE] * len(t)
        n_false, n_true = (core.count_inconsistencies(claims, x) for x in (all_false, all_true))
        expected = {
            "same": (0, 0),
            "opposite": (1, 1),
            "at_most_one_true": (0, 3),
            "at_least_one_true": (1, 0),
            "exactly_one_true": (1, 3),
        }
        assert (n_false, n_true) == expected[kind], kind
    assert shown == {*KINDS, *GROUP_ONLY_KINDS}


def test_opposite_over_a_group_of_three_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [{"id": k, "claim": f"{k}.", "group": "g"} for k in "abc"]
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in [*rows, {"relation": "opposite", "group": "g"}])
    )
    with pytest.raises(
        DataError, match=r"c.jsonl:4: field 'relation': 'opposite' over group 'g' of 3"
    ):
        load_claims_file(path)


@pytest.mark.parametrize(
    ("line", "field", "ours"),
    [
        ({"id": "a", "claim": "x", "consistency_id": 3}, "consistency_id", "group"),
        ({"id": "a", "claim": "x", "gold": True}, "gold", "label"),
    ],
)
def test_other_formats_field_names_are_refused_with_ours(
    tmp_path: Path, line: dict[str, object], field: str, ours: str
) -> None:
    """`consistency_id` (the paper's data files) and `gold` (icm.api) were kept as
    metadata and meant nothing: the run went on without groups, or without gold labels."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=rf"c.jsonl:1: field '{field}': .*did you mean '{ours}'"):
        load_claims_file(path)
    both = {**line, ours: 1 if ours == "group" else True}  # beside ours: metadata, as before
    path.write_text(json.dumps(both) + "\n")
    assert len(load_claims_file(path)) == 1


def test_a_relation_column_in_a_csv_is_refused_naming_the_relation_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,claim,relation\na,x,opposite\n")
    with pytest.raises(DataError, match=r"c.csv:2: field 'relation': .*'same', 'opposite'"):
        load_claims_file(path)
