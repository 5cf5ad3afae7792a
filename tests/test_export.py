"""icm export: SFT / DPO / reward JSONL and the Hugging Face folder, read back with the
`datasets` library and checked against the run's labels.jsonl.

The runs here use the synthetic stand-in scorer: what is under test is the export of a
run directory, not the model (test_replicate exports labels of the real embedded model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from icm.errors import DataError
from icm.export import export, load_run, preference_pairs
from icm.run_dir import read_jsonl, write_jsonl

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def icm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icm.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(autouse=True)
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`datasets` keeps what it loads under a cache of its own (~/.cache/huggingface): one
    per test, so that what a test reads back never depends on what this machine loaded
    before (a user's earlier export named `hf` once answered for the new one)."""
    _hf_cache_dir[:] = [tmp_path_factory.mktemp("hf-cache")]
    yield


_hf_cache_dir: list[Path] = []


def load_dataset(*args: str, **kwargs: str):  # type: ignore[no-untyped-def]
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # a local folder, never the hub
    import datasets

    datasets.disable_progress_bars()
    cache_dir = str(_hf_cache_dir[0])
    return datasets.load_dataset(*args, cache_dir=cache_dir, **kwargs)["train"]


@pytest.fixture(scope="module")
def capitals_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cap") / "run"
    r = icm(
        "run", "--model", "synthetic", "--size", "16", "--K", "60", "--out", str(out), "--quiet"
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def alpaca_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHARED_DATA / "paper_splits" / "test_alpaca.json").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("alp") / "run"
    r = icm(
        "run",
        "--model",
        "synthetic",
        "--testbed",
        "alpaca",
        "--data-dir",
        str(SHARED_DATA),
        "--size",
        "16",
        "--K",
        "60",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    return out


def test_sft_jsonl_and_hf_folder_round_trip(capitals_run: Path, tmp_path: Path) -> None:
    labels = {r["id"]: r for r in read_jsonl(capitals_run / "labels.jsonl")}
    r = icm("export", str(capitals_run), "--format", "sft", "--out", str(tmp_path / "sft.jsonl"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 16
    sft = load_dataset("json", data_files=str(tmp_path / "sft.jsonl"))
    assert len(sft) == 16 and set(sft.column_names) == {
        "prompt",
        "completion",
        "id",
        "label",
        "group",
    }
    for row in sft:
        src = labels[row["id"]]
        assert row["prompt"] == src["prompt"] and row["label"] == src["label"]
        assert row["completion"] == ("True" if src["label"] else "False")
    assert "gold" not in sft.column_names  # unsupervised unless asked for

    r = icm("export", str(capitals_run), "--format", "hf", "--with-gold")
    assert r.returncode == 0, r.stderr
    folder = capitals_run / "export" / "hf"
    hf = load_dataset(str(folder))
    assert sorted(hf["id"]) == sorted(labels)
    for row in hf:
        assert row["label"] == labels[row["id"]]["label"]
        assert row["gold"] == labels[row["id"]]["gold"]
    card = (folder / "README.md").read_text()
    assert "without human or gold labels" in card and '"testbed": "capitals"' in card


def test_a_second_hf_export_into_a_folder_of_the_same_name_loads_fresh(
    capitals_run: Path, tmp_path: Path
) -> None:
    """`datasets` caches a local folder's configs under its name and the card's file names:
    the export with --with-gold (and another run's export/hf) came back from the cache of
    the first export, without a `gold` column."""
    folder = tmp_path / "hf"
    assert icm("export", str(capitals_run), "--format", "hf", "--out", str(folder)).returncode == 0
    assert "gold" not in load_dataset(str(folder)).column_names
    r = icm("export", str(capitals_run), "--format", "hf", "--with-gold", "--out", str(folder))
    assert r.returncode == 0, r.stderr
    assert "gold" in load_dataset(str(folder)).column_names
    # The first export's file is gone; the card names the one left.
    assert [p.name for p in folder.glob("labels*.parquet")] == [_card_file(folder)]
    other = tmp_path / "other" / "hf"  # another run's export, the same folder name
    assert icm("export", str(capitals_run), "--format", "hf", "--out", str(other)).returncode == 0
    assert "gold" not in load_dataset(str(other)).column_names


def _card_file(folder: Path) -> str:
    card = (folder / "README.md").read_text()
    return card.split("data_files: ", 1)[1].split("\n", 1)[0]


def test_capitals_groups_give_true_over_false_pairs(capitals_run: Path, tmp_path: Path) -> None:
    rows = read_jsonl(capitals_run / "labels.jsonl")
    # Make the group mixed on purpose so that pairs must appear, whatever the search chose.
    group = rows[0]["group"]
    members = [r for r in rows if r["group"] == group]
    assert len(members) == 2
    members[0]["label"], members[1]["label"] = True, False
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text((capitals_run / "config.json").read_text())
    write_jsonl(run / "labels.jsonl", rows)
    out = tmp_path / "dpo.jsonl"
    summary = export(run, "dpo", out)
    dpo = load_dataset("json", data_files=str(out))
    mine = [p for p in dpo if p["source"] == f"group {group}"]
    assert len(mine) == 1
    t, f = members[0], members[1]
    assert mine[0]["ids"] == [t["id"], f["id"]]
    assert mine[0]["prompt"] == t["prompt"].split("\n")[0].removeprefix("Question: ")
    assert mine[0]["chosen"] in t["prompt"] and mine[0]["rejected"] in f["prompt"]
    # Every pair comes from a group holding one claim of each label.
    by_group: dict[str, set[bool]] = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).add(r["label"])
    assert summary["rows"] == sum(labels == {True, False} for labels in by_group.values())


def test_alpaca_pairs_follow_labels_and_drop_contradicting_twins(
    alpaca_run: Path, tmp_path: Path
) -> None:
    rows = read_jsonl(alpaca_run / "labels.jsonl")
    assert all({"question", "first", "second"} <= set(r["fields"]) for r in rows)
    for fmt in ("dpo", "reward"):
        r = icm("export", str(alpaca_run), "--format", fmt)
        assert r.returncode == 0, r.stderr
    dpo = load_dataset("json", data_files=str(alpaca_run / "export" / "dpo.jsonl"))
    by_id = {r["id"]: r for r in rows}
    for pair in dpo:
        (cid,) = pair["ids"]
        f, label = by_id[cid]["fields"], by_id[cid]["label"]
        assert pair["prompt"] == f["question"]
        assert pair["chosen"] == (f["first"] if label else f["second"])
        assert pair["rejected"] == (f["second"] if label else f["first"])
    reward = load_dataset("json", data_files=str(alpaca_run / "export" / "reward.jsonl"))
    assert len(reward) == len(dpo)
    for p, w in zip(dpo, reward, strict=True):
        assert w["chosen"].startswith(p["prompt"]) and w["chosen"].endswith(p["chosen"])

    # Twins labelled alike state opposite preferences: the pair is dropped and counted.
    run = tmp_path / "run"
    run.mkdir()
    for r in rows:
        r["label"] = True
    write_jsonl(run / "labels.jsonl", rows)
    (run / "config.json").write_text((alpaca_run / "config.json").read_text())
    pairs = preference_pairs(load_run(run))
    twins = sum(1 for g in {r["group"] for r in rows} if sum(r["group"] == g for r in rows) == 2)
    assert pairs.contradicting_twins == twins > 0
    assert len(pairs.rows) == len({r["group"] for r in rows}) - twins


def test_label_pairs_and_clear_errors(capitals_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    export(capitals_run, "dpo", out, label_pairs=True)
    word_pairs = [p for p in read_jsonl(out) if p["source"] == "label-word"]
    assert len(word_pairs) == 16
    assert all({p["chosen"], p["rejected"]} == {"True", "False"} for p in word_pairs)

    with pytest.raises(DataError, match=r"labels\.jsonl: not found"):
        export(tmp_path, "sft", out)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((capitals_run / "config.json").read_text())
    (bad / "labels.jsonl").write_text('{"id": "a", "label": true, "prompt": "x"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match=r"labels.jsonl:2: field 'prompt'"):
        export(bad, "sft", out)
    r = icm("export", str(bad), "--format", "parquet")
    assert r.returncode != 0 and "invalid choice" in r.stderr
