"""Fuzzing: every dataset loader and the configuration parsing, fed random and mutated
input, either succeed or stop with the documented clear error (DataError / ConfigError:
one line naming the file, line and field). Anything else is a bug. About 11,000 cases."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icm.checkpoint import load_progress
from icm.config import RunConfig
from icm.errors import ConfigError, DataError
from icm.testbeds import LoadOptions, get_testbed
from icm.testbeds.custom import load_claims_file

# Thousands of generated inputs per test: a minute of CPU in all.
pytestmark = pytest.mark.slow

SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_names = itertools.count()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="icm-fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fresh(scratch: Path, suffix: str, data: bytes) -> Path:
    """A new file per case: readers cache by (path, size, mtime)."""
    path = scratch / f"case{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


def only_clear_errors(fn: Callable[[], object]) -> None:
    try:
        fn()
    except (DataError, ConfigError) as e:
        message = str(e)
        assert message and "\n" not in message.strip(), message
        assert "Traceback" not in message


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
claim_keys = st.sampled_from(
    [
        "id",
        "question",
        "claim",
        "prompt",
        "group",
        "label",
        "same",
        "opposite",
        "at_most_one_true",
        "relation",
        "a",
        "b",
        "extra",
        "qestion",
    ]
)
claim_rows = st.dictionaries(claim_keys, json_values, max_size=6)
good_row = st.builds(
    lambda i, g, lab: {
        "id": f"c{i}",
        "question": "Q?",
        "claim": f"answer {i}",
        "group": g,
        "label": lab,
    },
    st.integers(0, 6),
    st.sampled_from(["g1", "g2", ""]),
    st.booleans(),
)


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Byte-level damage: truncation, deletion, insertion, flips."""
    ops = draw(st.lists(st.integers(0, 3), max_size=4))
    out = bytearray(data)
    for op in ops:
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        if op == 0:
            del out[i:]
        elif op == 1:
            del out[i]
        elif op == 2:
            out[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            out[i] ^= draw(st.integers(1, 255))
    return bytes(out)


@st.composite
def claims_jsonl(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(st.one_of(claim_rows, good_row), max_size=6))
    relations = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "relation": st.sampled_from(
                        ["opposite", "same", "at_most_one_true", "exactly_one_true", "oposite"]
                    ),
                    "a": st.sampled_from(["c0", "c1", "zz"]),
                    "b": st.sampled_from(["c1", "c2"]),
                }
            ),
            max_size=2,
        )
    )
    text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows + relations)
    return mutate(text.encode(), draw)


@settings(max_examples=3000, **SETTINGS)
@given(data=claims_jsonl())
def test_claims_jsonl(scratch: Path, data: bytes) -> None:
    path = fresh(scratch, ".jsonl", data)
    only_clear_errors(lambda: load_claims_file(path, LoadOptions()).to_claim_set())


@st.composite
def claims_csv(draw: st.DrawFn) -> bytes:
    header = draw(st.lists(claim_keys, min_size=1, max_size=5, unique=True))
    rows = draw(st.lists(st.lists(st.text(max_size=8), min_size=0, max_size=6), max_size=5))
    lines = [",".join(header)] + [
        ",".join(json.dumps(c) if "," in c else c for c in r) for r in rows
    ]
    return mutate(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"), draw)


@settings(max_examples=2000, **SETTINGS)
@given(data=claims_csv())
def test_claims_csv(scratch: Path, data: bytes) -> None:
    path = fresh(scratch, ".csv", data)
    only_clear_errors(lambda: load_claims_file(path, LoadOptions()).to_claim_set())


@settings(max_examples=1000, **SETTINGS)
@given(data=st.binary(max_size=200))
def test_claims_json_random_bytes(scratch: Path, data: bytes) -> None:
    path = fresh(scratch, ".json", data)
    only_clear_errors(lambda: load_claims_file(path, LoadOptions()))


fields = st.sampled_from([*RunConfig().to_dict(), "temperature", "k"])


@settings(max_examples=2000, **SETTINGS)
@given(data=st.dictionaries(fields, json_values, max_size=6))
def test_run_config(data: dict) -> None:
    def parse() -> None:
        cfg = RunConfig.from_dict(data, source="fuzz")
        cfg.validate()
        cfg.search_params()

    only_clear_errors(parse)


def paper_file_case(testbed: str, relpath: str, lines: int) -> Callable[..., None]:
    source = SHARED / relpath
    original = b"".join(source.open("rb").readlines()[:lines]) if source.exists() else b""
    if source.suffix == ".json" and original:
        items = json.loads(source.read_text())[:lines]
        original = json.dumps(items, indent=1).encode()

    @settings(max_examples=750, **SETTINGS)
    @given(data=st.data())
    def case(scratch: Path, data: st.DataObject) -> None:
        if not original:
            pytest.skip(f"{source} not present")
        root = scratch / f"data{next(_names)}"
        target = root / relpath
        target.parent.mkdir(parents=True)
        target.write_bytes(mutate(original, data.draw))
        only_clear_errors(
            lambda: get_testbed(testbed).load("test", LoadOptions(data_dir=root)).to_claim_set()
        )

    return case


test_truthfulqa_paper_split = paper_file_case("truthfulqa", "paper_splits/test_truthfulqa.json", 12)
test_gsm8k_paper_split = paper_file_case("gsm8k", "paper_splits/test_gsm8k.json", 8)
test_ethics_csv = paper_file_case("ethics-justice", "ethics/justice/justice_test.csv", 20)
test_mfv_csv = paper_file_case("mfv-wrong", "moral_foundations_vignettes/vignettes.csv", 30)


@settings(max_examples=1000, **SETTINGS)
@given(data=st.data())
def test_checkpoint_state(scratch: Path, data: st.DataObject) -> None:
    run = scratch / f"run{next(_names)}"
    run.mkdir()
    state = {
        "format": 1,
        "n_completed": 0,
        "batch": 0,
        "n_trace_rows": 1,
        "state": {
            "labels": [-1, 0, 1],
            "iteration": 1,
            "n_accepted": 0,
            "rng_state": "1 2",
            "initialized": True,
            "context_epoch": 0,
            "context_pool": [],
        },
    }
    (run / "state.json").write_bytes(mutate(json.dumps(state).encode(), data.draw))
    (run / "trace.jsonl").write_text('{"iteration": 0}\n')
    only_clear_errors(lambda: load_progress(run))
