"""Every registered testbed, one generic suite: it loads (when its data is present), its
ids are unique, its relations are valid and mostly satisfied by gold, its prompts end with
its template's tail, gold labels stay out of what the search sees, it is deterministic
for a seed, and `icm show` prints it. Also the data-file readers' error messages."""

from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path

import pytest

from icm import cli
from icm.data.data_dir import data_file
from icm.data.readers import (
    read_csv_records,
    read_json_records,
    read_jsonl_records,
    req_bool,
    req_str,
)
from icm.errors import ConfigError, DataError
from icm.testbeds import ClaimRecord, ClaimTable, LoadOptions, get_testbed, list_testbeds
from icm.testbeds.base import RELATION_KINDS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = [(cls.name, split) for cls in list_testbeds() for split in cls.splits]
PAPER_CASES = [(n, s) for n, s in CASES if "paper" in type(get_testbed(n)).consistency_modes]
BALANCED_CASES = [(n, s) for n, s in CASES if getattr(type(get_testbed(n)), "balanced", False)]
NAMES = [cls.name for cls in list_testbeds()]


def is_missing_data(e: DataError) -> bool:
    """Absent data (skip) as opposed to malformed data (fail): the message says how to get
    it."""
    return "not found" in str(e) or "icm data fetch" in str(e)


@functools.cache
def load(
    name: str, split: str, consistency: str = "default", size: int | None = None, seed: int = 0
) -> ClaimTable | str:
    """The table, or why it cannot be loaded here (its data is absent)."""
    options = LoadOptions(data_dir=SHARED_DATA, size=size, seed=seed, consistency=consistency)
    try:
        return get_testbed(name).load(split, options)
    except DataError as e:
        if is_missing_data(e):
            return f"{name}/{split}: data not present ({e})"
        raise


def table(name: str, split: str, **kw: object) -> ClaimTable:
    t = load(name, split, **kw)  # type: ignore[arg-type]
    if isinstance(t, str):
        pytest.skip(t)
    return t


def test_every_builtin_testbed_is_registered() -> None:
    for name in (
        "arithmetic",
        "capitals",
        "comparison",
        "truthfulqa",
        "gsm8k",
        "alpaca",
        "truthfulqa-preference",
    ):
        assert name in NAMES


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("truthfulQA", "truthfulqa"),  # the original code's --testbed names
        ("truthfulQA-preference", "truthfulqa-preference"),
        ("gsm8k", "gsm8k"),
        ("alpaca", "alpaca"),
        ("Capitals", "capitals"),  # any case, '_' for '-'
        ("truthfulqa_preference", "truthfulqa-preference"),
        ("ETHICS_Virtue", "ethics-virtue"),
    ],
)
def test_names_are_case_insensitive_and_take_the_original_spellings(
    spelling: str, name: str
) -> None:
    assert get_testbed(spelling).name == name


def test_unknown_name_still_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError, match=r"unknown testbed 'TruthfulQA-pref'.*Did you mean"):
        get_testbed("TruthfulQA-pref")


def test_icm_run_takes_the_original_spelling(tmp_path: Path) -> None:
    """`--testbed truthfulQA`, as in the original's README, runs truthfulqa (a synthetic
    scorer: only the name resolution is under test)."""
    if not (SHARED_DATA / "paper_splits" / "train_truthfulqa.json").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    out = tmp_path / "run"
    argv = ["run", "--testbed", "truthfulQA", "--model", "synthetic", "--size", "8"]
    argv += ["--K", "5", "--data-dir", str(SHARED_DATA), "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["testbed"]["name"] == "truthfulqa"


@pytest.mark.parametrize("name", NAMES)
def test_declares_what_the_issue_asks(name: str) -> None:
    cls = type(get_testbed(name))
    for attr in ("summary", "source", "license", "consistency_rule", "template"):
        assert isinstance(getattr(cls, attr), str) and getattr(cls, attr).strip(), attr
    assert cls.splits and len(set(cls.splits)) == len(cls.splits)
    assert "default" in cls.consistency_modes and "none" in cls.consistency_modes
    assert cls.describe()["name"] == name


@pytest.mark.parametrize(("name", "split"), CASES)
def test_loads_with_unique_ids_and_valid_relations(name: str, split: str) -> None:
    t = table(name, split)
    assert len(t) > 0
    ids = [c.id for c in t.claims]
    assert len(set(ids)) == len(ids)
    assert all(c.prompt.strip() for c in t.claims)
    known = set(ids)
    pairs = set()
    for r in t.relations:
        assert r.kind in RELATION_KINDS
        assert r.a in known and r.b in known and r.a != r.b
        pair = frozenset((r.a, r.b))
        assert pair not in pairs, f"relation between {r.a} and {r.b} listed twice"
        pairs.add(pair)
    t.to_claim_set()  # the core accepts it


@pytest.mark.parametrize(("name", "split"), CASES)
def test_prompts_end_with_the_template_tail(name: str, split: str) -> None:
    cls = type(get_testbed(name))
    t = table(name, split)
    tail = cls.template[cls.template.rindex("}") + 1 :] if "}" in cls.template else ""
    assert tail.strip(), f"{name}: the template has no fixed tail after its last field"
    bad = [c.id for c in t.claims if not c.prompt.endswith(tail)]
    assert not bad, f"{len(bad)} prompts do not end with {tail!r}, e.g. {bad[:3]}"
    assert t.label_words == cls.label_words


@pytest.mark.parametrize(("name", "split"), CASES)
def test_default_structure_never_uses_gold(name: str, split: str) -> None:
    t = table(name, split)
    assert t.structure_uses_gold is False
    if len(t) > 5000:
        return  # --consistency none is Testbed.load's; the smaller splits check it
    none = table(name, split, consistency="none")
    assert none.relations == [] and not none.structure_uses_gold
    assert [c.id for c in none.claims] == [c.id for c in t.claims]


@pytest.mark.parametrize(("name", "split"), PAPER_CASES)
def test_paper_mode_says_when_it_uses_gold(name: str, split: str) -> None:
    t = table(name, split, consistency="paper")
    if t.structure_uses_gold:
        assert any("gold" in n.lower() for n in t.notes), t.notes


@pytest.mark.parametrize(("name", "split"), CASES)
def test_position_and_ids_do_not_reveal_gold(name: str, split: str) -> None:
    """Whether the first claim of a group (in table order, and in id order) is true must
    look like chance: files that list the true answers first (the paper's truthfulqa and
    truthfulqa_preference) must be reordered by content. A z-test against the share of
    true claims in each group; a leak like "first is always true" gives z = sqrt(groups)."""
    t = table(name, split)
    mixed = [g for g in t.groups().values() if len({c.gold for c in g}) == 2]
    if len(mixed) < 40:
        pytest.skip(f"only {len(mixed)} groups with mixed gold labels")
    p = [sum(bool(c.gold) for c in g) / len(g) for g in mixed]
    expected, sd = sum(p), math.sqrt(sum(q * (1 - q) for q in p))
    for order in ("table", "id"):
        firsts = [(g if order == "table" else sorted(g, key=lambda c: c.id))[0] for g in mixed]
        z = (sum(bool(c.gold) for c in firsts) - expected) / sd
        assert abs(z) < 5, (
            f"the first claim by {order} order is true too often or rarely: z={z:.1f}"
        )


def source_line(c: ClaimRecord) -> int:
    return int(str(c.fields["source"]).rsplit(":", 1)[1])


@pytest.mark.parametrize(("name", "split"), PAPER_CASES)
def test_paper_mode_lists_a_group_in_file_order(name: str, split: str) -> None:
    """--consistency paper lists the claims of a group in the file's order, as the original
    code does; the default lists them by content (see the test above). Either way the ids,
    the groups, their order and a seeded sample of whole groups are the same."""
    paper, default = table(name, split, consistency="paper"), table(name, split)
    for group in paper.groups().values():
        lines = [source_line(c) for c in group]
        assert lines == sorted(lines), (group[0].group, lines)
    assert list(paper.groups()) == list(default.groups())
    assert sorted(paper.ids) == sorted(default.ids)
    for p, d in zip(paper.groups().values(), default.groups().values(), strict=True):
        assert {c.id for c in p} == {c.id for c in d}
    size = min(40, len(default) // 2)
    sample = get_testbed(name).load(
        split, LoadOptions(data_dir=SHARED_DATA, size=size, seed=3, consistency="paper")
    )
    assert set(sample.ids) == set(default.sample_groups(size, 3).ids)


@pytest.mark.parametrize(("name", "split"), CASES)
def test_gold_labels_mostly_satisfy_the_relations(name: str, split: str) -> None:
    """Relations hold by construction, so gold labels may break them only through label
    noise (gsm8k's paper test labels break 174 of 4458; see docs/testbeds.md)."""
    t = table(name, split)
    gold = {c.id: c.gold for c in t.claims}
    checked = broken = 0
    for r in t.relations:
        a, b = gold[r.a], gold[r.b]
        if a is None or b is None:
            continue
        checked += 1
        broken += (
            (r.kind == "same" and a != b)
            or (r.kind == "opposite" and a == b)
            or (r.kind == "at_most_one_true" and a and b)
        )
    if checked:
        assert broken <= 0.05 * checked, f"gold breaks {broken} of {checked} relations"
    # "At least one true" is only declared where a true claim is there by construction.
    for g in t.group_constraints:
        labels = [gold[m] for m in g.members]
        if None not in labels:
            assert any(labels), f"gold labels break {g.kind} over {g.members}"


@pytest.mark.parametrize(("name", "split"), BALANCED_CASES)
def test_balanced_where_claimed(name: str, split: str) -> None:
    """Testbeds with `balanced = True` have as many true as false claims."""
    t = table(name, split)
    n_true = sum(c.gold is True for c in t.claims)
    n_false = sum(c.gold is False for c in t.claims)
    assert n_true == n_false


@pytest.mark.parametrize(("name", "split"), CASES)
def test_size_picks_whole_groups_deterministically(name: str, split: str) -> None:
    full = table(name, split)
    groups = {g: {c.id for c in cs} for g, cs in full.groups().items()}
    # A fresh load (nothing cached by this test) equals the sample of the first load.
    fresh = get_testbed(name).load(split, LoadOptions(data_dir=SHARED_DATA, size=24, seed=1))
    a = full.sample_groups(24, 1)
    assert [(c.id, c.prompt, c.gold) for c in fresh.claims] == [
        (c.id, c.prompt, c.gold) for c in a.claims
    ]
    assert fresh.relations == a.relations
    smallest = min(len(g) for g in groups.values())
    assert len(a) <= max(24, smallest)
    picked = {c.id for c in a.claims}
    for c in a.claims:
        assert groups[c.group or c.id] <= picked, f"group {c.group} was split"
    if len(full) > 200:
        assert {c.id for c in full.sample_groups(24, 2).claims} != picked


@pytest.mark.parametrize("name", NAMES)
def test_icm_show_prints_rendered_claims(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    split = type(get_testbed(name)).splits[0]
    t = load(name, split)
    if isinstance(t, str):
        pytest.skip(t)
    rc = cli.main(
        ["show", name, "--split", split, "-n", "2", "--gold", "--data-dir", str(SHARED_DATA)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("--- ") >= 2 and t.claims[0].prompt in out and "[gold:" in out


# --------------------------------------------------------------------------- readers


def test_missing_file_says_where_to_put_it_and_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        data_file(tmp_path, "gsm8k/train.jsonl")
    msg = str(e.value)
    assert str(tmp_path / "gsm8k/train.jsonl") in msg
    assert "put gsm8k/train.jsonl under" in msg and "icm data fetch gsm8k" in msg
    with pytest.raises(DataError, match="data directory not found"):
        data_file(tmp_path / "nope", "gsm8k/train.jsonl")
    # ICM_DATA_DIR (or --data-dir) naming a file: it exists, so "not found" misled.
    a_file = write(tmp_path / "data.txt", "x")
    with pytest.raises(DataError, match="data directory is a file, not a folder"):
        data_file(a_file, "gsm8k/train.jsonl")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def where(e: pytest.ExceptionInfo[DataError]) -> tuple[str | None, int | None, str | None]:
    return (Path(e.value.path).name if e.value.path else None, e.value.line, e.value.field)


def test_json_array_records_keep_their_line(tmp_path: Path) -> None:
    p = write(tmp_path / "a.json", '[\n  {"q": "x",\n   "label": 1},\n  {"q": "y"}\n]\n')
    assert read_json_records(p) == [(2, {"q": "x", "label": 1}), (4, {"q": "y"})]
    assert read_json_records(write(tmp_path / "e.json", "[]")) == []


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", None, "empty file"),
        ("  \n", None, "empty file"),
        ('{"a": 1}', 1, "expected a JSON array"),
        ('[\n {"a": 1},\n {"a": 2,}\n]', 3, "bad JSON"),
        ('[\n {"a": 1},\n "text"\n]', 3, "expected a JSON object, got a string"),
        ('[\n {"a": 1}\n {"a": 2}\n]', 3, "expected ',' or ']'"),
        ('[\n {"a": 1}\n', 3, "bad JSON"),
        ('[{"a": 1}]\n[]', 2, "extra data"),
    ],
)
def test_json_array_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int | None, problem: str
) -> None:
    p = write(tmp_path / "bad.json", text)
    with pytest.raises(DataError, match=problem) as e:
        read_json_records(p)
    assert where(e)[:2] == ("bad.json", line)
    assert str(p) in str(e.value)


def test_jsonl_records_and_errors(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", '{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl_records(p) == [(1, {"a": 1}), (3, {"a": 2})]
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert [r for _, r in read_jsonl_records(gz)] == [{"a": 1}, {"a": 2}]
    cases = [
        ("", None, "empty file"),
        ('{"a": 1}\n{"a": \n', 2, "bad JSON"),
        ('{"a": 1}\n[1, 2]\n', 2, "expected a JSON object, got an array"),
    ]
    for i, (text, line, problem) in enumerate(cases):
        p = write(tmp_path / f"bad{i}.jsonl", text)
        with pytest.raises(DataError, match=problem) as e:
            read_jsonl_records(p)
        assert where(e)[:2] == (f"bad{i}.jsonl", line)
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match="UTF-8") as e:
        read_jsonl_records(p)
    assert e.value.line == 2


def test_csv_records_keep_the_line_a_record_starts_on(tmp_path: Path) -> None:
    p = write(tmp_path / "a.csv", '\ufeffq,a\nx,"multi\nline"\n\ny,z\n')
    assert read_csv_records(p, required=["q", "a"]) == [
        (2, {"q": "x", "a": "multi\nline"}),
        (5, {"q": "y", "a": "z"}),
    ]
    assert read_csv_records(write(tmp_path / "h.csv", "1,2\n"), header=["x", "y"]) == [
        (1, {"x": "1", "y": "2"})
    ]


def test_csv_errors_name_file_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty file") as e:
        read_csv_records(write(tmp_path / "e.csv", ""))
    assert where(e) == ("e.csv", None, None)
    with pytest.raises(DataError, match="missing column") as e:
        read_csv_records(write(tmp_path / "m.csv", "q,b\n1,2\n"), required=["q", "a"])
    assert where(e) == ("m.csv", 1, "a")
    with pytest.raises(DataError, match="expected 2 fields") as e:
        read_csv_records(write(tmp_path / "n.csv", "q,a\n1,2\n1,2,3\n"))
    assert where(e) == ("n.csv", 3, None)


def test_field_readers_name_the_field(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    with pytest.raises(DataError, match="missing") as e:
        req_str({"a": "x"}, "question", path=p, line=7)
    assert where(e) == ("x.json", 7, "question")
    with pytest.raises(DataError, match="expected a string, got a number") as e:
        req_str({"question": 3}, "question", path=p, line=7)
    assert e.value.field == "question"
    with pytest.raises(DataError, match="empty"):
        req_str({"question": "  "}, "question", path=p, line=7)
    assert req_bool({"label": 0}, "label", path=p, line=1) is False
    assert req_bool({"label": "True"}, "label", path=p, line=1) is True
    with pytest.raises(DataError, match="expected true/false") as e:
        req_bool({"label": "maybe"}, "label", path=p, line=9)
    assert where(e) == ("x.json", 9, "label")
    with pytest.raises(DataError, match="expected true/false"):
        req_bool({"label": 2}, "label", path=p, line=9)


def test_readers_cache_but_notice_a_changed_file(tmp_path: Path) -> None:
    p = write(tmp_path / "c.jsonl", json.dumps({"a": 1}) + "\n")
    assert read_jsonl_records(p) == [(1, {"a": 1})]
    write(p, json.dumps({"a": 2}) + "\n" + json.dumps({"a": 3}) + "\n")
    assert [r["a"] for _, r in read_jsonl_records(p)] == [2, 3]


def test_icm_testbeds_lists_every_testbed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an empty data directory (fast): generated testbeds show their sizes, the
    others say where their data comes from."""
    monkeypatch.delenv("ICM_DATA_DIR", raising=False)
    assert cli.main(["testbeds", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "claims: train 194, test 90" in out  # capitals
    assert "data not found: test: paper_splits/test_gsm8k.json" in out  # gsm8k


def test_every_missing_data_file_says_the_same_thing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All testbeds that read data files report a missing one through data_file: where it
    was expected and an `icm data fetch` name that exists (the moral testbeds once had a
    helper of their own, with other words)."""
    from icm.data.manifest import DATASETS

    monkeypatch.delenv("ICM_DATA_DIR", raising=False)
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))  # no fetched data either
    empty = tmp_path / "data"
    empty.mkdir()
    checked = 0
    for cls in list_testbeds():
        if cls.source.startswith("generated") or cls.name == "machiavelli":  # a folder
            continue
        split = next(iter(cls.splits))
        for data_dir, expected in ((None, "no data directory for "), (empty, "put ")):
            with pytest.raises(DataError) as e:
                cls().load(split, LoadOptions(data_dir=data_dir))
            msg = str(e.value)
            assert expected in msg, (cls.name, msg)
            fetched = msg.split("icm data fetch ", 1)[1].split("`", 1)[0]
            assert fetched in DATASETS, (cls.name, msg)
        checked += 1
    assert checked >= 10
