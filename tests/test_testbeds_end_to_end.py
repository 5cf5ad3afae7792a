"""Every registered testbed runs end to end with `icm run` on the real default model
(small batch): one llama.cpp server on the packaged Gemma 3 270M base model for the whole
module, one `icm run` subprocess per testbed. Testbeds whose data is not on this machine
are skipped with the reason (the loader's own message); MACHIAVELLI, whose scenes are not
in the offline data, runs on the hand-written fixture of tests/fixtures/machiavelli."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icm.errors import DataError
from icm.testbeds import ClaimTable, LoadOptions, get_testbed, list_testbeds

from .test_backend_completions import shared_server
from .test_testbeds import SHARED_DATA, is_missing_data

pytestmark = pytest.mark.model

NAMES = [cls.name for cls in list_testbeds()]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def first_loadable(name: str, skip: str | None = None) -> tuple[str, Path, ClaimTable | str]:
    """The first split (other than `skip`) whose data is here (ETHICS commonsense has no
    offline train file)."""
    data_dir = FIXTURES if name == "machiavelli" else SHARED_DATA
    why = ""
    for split in type(get_testbed(name)).splits:
        if split == skip:
            continue
        try:
            t = get_testbed(name).load(split, LoadOptions(data_dir=data_dir, size=6, seed=0))
            return split, data_dir, t
        except DataError as e:
            if not is_missing_data(e):
                raise
            why = f"{name}: no split has its data here ({e})"
    return "", data_dir, why


@pytest.mark.parametrize("name", NAMES)
def test_icm_run_and_eval_on_the_default_model(name: str, tmp_path: Path) -> None:
    split, data_dir, t = first_loadable(name)
    if isinstance(t, str):
        pytest.skip(t)
    out = tmp_path / "run"
    # fmt: off
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "run", "--testbed", name, "--split", split,
         "--data-dir", str(data_dir), "--size", "6", "--seed", "0", "--K", "4", "--context-k", "2",
         "--base-url", shared_server().base_url, "--model", "gemma-3-270m-q4_k_m",
         "--cache", "off", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    # fmt: on
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["testbed"] == name
    assert metrics["backend"]["requests"] > 0 and metrics["backend"]["failures"] == 0
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [c.id for c in t.claims]
    assert all(isinstance(row["label"], bool) for row in rows)
    assert all(isinstance(row["score"], float) for row in rows)

    # icm eval: the run's labels as demonstrations for claims of another split.
    test_split, _, test = first_loadable(name, skip=split)
    if isinstance(test, str):
        pytest.skip(test)
    # fmt: off
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "eval", "--labels", str(out),
         "--test-split", test_split, "--test-size", "4", "--context-tokens", "1024",
         "--data-dir", str(data_dir), "--base-url", shared_server().base_url,
         "--model", "gemma-3-270m-q4_k_m", "--cache", "off", "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    # fmt: on
    if all(c.gold is None for c in test.claims):  # DailyDilemmas: analysed, not scored
        assert r.returncode != 0 and "no gold labels to evaluate against" in r.stderr
        return
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["testbed"] == name and result["source"] == "icm"
    assert result["n_test"] > 0 and result["n_demos"] > 0  # whole groups: about 4
    assert 0.0 <= result["ci95"][0] <= result["accuracy"] <= result["ci95"][1] <= 1.0
    assert result["backend"]["requests"] >= result["n_test"]
    printed = [x for x in r.stderr.splitlines() if x.startswith("WARNING: ")]
    assert printed == [f"WARNING: {w}" for w in result["warnings"]]
    one_sided = result["n_test"] >= 2 and result["share_predicted_true"] in (0.0, 1.0)
    assert one_sided == any(w.startswith("degenerate predictions") for w in result["warnings"])


def test_icm_eval_holds_out_part_of_a_claims_file(tmp_path: Path) -> None:
    """A 165-claim custom file (groups of three sums, exactly one right): `icm eval
    --test-fraction` scores held-out groups with the real model (it used to stop with a
    false "198 test claims are also train claims")."""
    from .test_evaluate import write_claims_file

    path = write_claims_file(tmp_path / "claims.jsonl")
    # fmt: off
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "eval", "--labels", "golden", "--testbed", str(path),
         "--test-fraction", "0.3", "--test-size", "6", "--max-demos", "6", "--seed", "1",
         "--base-url", shared_server().base_url, "--model", "gemma-3-270m-q4_k_m",
         "--cache", "off", "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    # fmt: on
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["n_test"] == 6 and result["n_demos"] == 6
    assert result["test_fraction"] == 0.3 and result["demo_label_accuracy"] == 1.0
    assert result["backend"]["requests"] >= 6
