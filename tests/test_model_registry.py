"""One way to open a model (icm.backends.registry): names, errors, and every caller
(icm run, icm eval, icm replicate, icm.api, icm run --iterative, icm eval --finetuned)
opening its model through it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from icm.backends import registry
from icm.backends.base import LabelScorer
from icm.backends.registry import MODELS, OpenModel, model_name, open_model
from icm.config import RunConfig
from icm.errors import ConfigError


class HashScorer(LabelScorer):
    """A stand-in for a model: a gap that is a fixed function of the prompt."""

    model_id = "hash-scorer"

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        self.stats.requests += len(prompts)
        out = []
        for p in prompts:
            h = hashlib.sha256(p.encode()).digest()[0] / 255
            out.append((-0.5 - h, -0.5 - (1 - h)))
        return out


class CountingModel(OpenModel):
    name = "embedded"

    def __init__(self, cfg: RunConfig, log: list[str]) -> None:
        super().__init__(cfg)
        self.log = log

    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        out = Path(self.cfg.out) if self.cfg.out else None
        exists = out is not None and out.exists()
        self.log.append(f"scorer {'/'.join(label_words)} (out exists: {exists})")
        scorer = HashScorer()
        scorer.label_words = label_words
        return scorer


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the embedded model of the registry by a stand-in that records its opens
    and closes (and the run directory's state at the open) in the returned list."""
    events: list[str] = []

    @contextlib.contextmanager
    def open_counting(cfg: RunConfig) -> Iterator[OpenModel]:
        out = Path(cfg.out) if cfg.out else None
        events.append(f"open (out exists: {out is not None and out.exists()})")
        yield CountingModel(cfg, events)
        events.append("close")

    monkeypatch.setitem(MODELS, "embedded", open_counting)
    return events


def test_an_unknown_model_name_is_one_line_listing_the_names() -> None:
    with pytest.raises(ConfigError) as e:
        open_model(RunConfig(), "llama")
    assert str(e.value) == (
        "model 'llama': unknown; the models are embedded, completions, transformers, synthetic"
    )
    from icm.api import claims_table, label

    table = claims_table([{"id": "a", "prompt": "x"}])
    with pytest.raises(ConfigError, match=r"^model 'llama': unknown; the models are embedded, "):
        label(table, scorer="llama")


def test_the_flags_select_the_model_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert model_name(RunConfig()) == "embedded"
    assert model_name(RunConfig(model="synthetic")) == "synthetic"
    assert model_name(RunConfig(model="m", base_url=["http://127.0.0.1:1/v1"])) == "completions"
    assert model_name(RunConfig(model_path=str(folder))) == "transformers"
    assert model_name(RunConfig(model_path=str(tmp_path / "m.gguf"))) == "embedded"
    # A name the flags do not fit is refused before anything starts.
    with pytest.raises(ConfigError, match="model 'completions': needs --base-url"):
        open_model(RunConfig(), "completions").__enter__()
    server = RunConfig(model="m", base_url=["http://127.0.0.1:1/v1"])
    with pytest.raises(ConfigError) as e:
        open_model(server, "transformers").__enter__()
    assert str(e.value) == "model 'transformers': loads the model in process; drop --base-url"


@dataclasses.dataclass
class FakeLoaded:
    """What load_causal_lm returns, without weights (a LoadedModel's fields)."""

    model: object
    model_id: str


@pytest.fixture
def no_finetune_extra_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-ins load nothing: the fast tier runs without torch."""
    monkeypatch.setattr("icm.backends.transformers_scorer.require_finetune_extra", lambda: None)


def test_transformers_opens_a_folder_a_gguf_file_or_the_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_finetune_extra_needed: None
) -> None:
    """Plumbing only: load_causal_lm (which does the loading) is replaced by a recorder."""
    from icm.backends import transformers_scorer
    from icm.backends.registry import open_in_process

    loads: list[str] = []

    def fake_load(source: str | Path) -> FakeLoaded:
        loads.append(str(source))
        return FakeLoaded(model="weights", model_id=f"transformers:{Path(source).name}")

    monkeypatch.setattr(transformers_scorer, "load_causal_lm", fake_load)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(12))
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    tuned = tmp_path / "after-batch-01"
    tuned.mkdir()
    (tuned / "finetune.json").write_text(json.dumps({"base": str(gguf)}))
    for model_path, loaded in [
        (None, "embedded"),
        (str(gguf), str(gguf)),
        (str(hf), str(hf)),
        (str(tuned), str(tuned)),
    ]:
        cfg = RunConfig(model_path=model_path, logprobs=7)
        with open_model(cfg, "transformers") as model:
            assert loads[-1] == loaded and model.name == "transformers"
            weights = model.loaded  # type: ignore[attr-defined]
            assert weights.model == "weights"
            with model.scorer(("Yes", "No")) as scorer:
                assert scorer.model_id == (
                    f"{weights.model_id} (top-7 logprobs, trailing space stripped)"
                )
        assert weights.model is None  # released with its context
    # The flags alone still send a GGUF file to the embedded server.
    assert model_name(RunConfig(model_path=str(gguf))) == "embedded"
    # A source as an `icm finetune` record names it; the server flags do not apply.
    server = RunConfig(model="m", base_url=["http://127.0.0.1:1/v1"], model_path=str(hf))
    for source, loaded in [("embedded", "embedded"), (gguf, str(gguf)), (tuned, str(tuned))]:
        with open_in_process(server, source):
            assert loads[-1] == loaded
    # A model path that is no model is refused before anything loads.
    n_loads = len(loads)
    with pytest.raises(ConfigError, match="no such file or folder"):
        open_model(RunConfig(model_path=str(tmp_path / "none.gguf")), "transformers")
    assert len(loads) == n_loads


class RecordedModel(OpenModel):
    name = "transformers"

    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        scorer = HashScorer()
        scorer.model_id = f"hash-scorer of {self.cfg.model_path}"
        return scorer


@pytest.fixture
def opened_in_process(monkeypatch: pytest.MonkeyPatch, no_finetune_extra_needed: None) -> list[str]:
    """Replace the transformers model of the registry by a stand-in that records which
    model_path it opens and when it is closed."""
    events: list[str] = []

    @contextlib.contextmanager
    def open_recorded(cfg: RunConfig) -> Iterator[OpenModel]:
        events.append(f"open {cfg.model_path}")
        yield RecordedModel(cfg)
        events.append(f"close {cfg.model_path}")

    monkeypatch.setitem(MODELS, "transformers", open_recorded)
    return events


def test_iterative_runs_open_each_batch_model_through_the_registry(
    tmp_path: Path, opened_in_process: list[str]
) -> None:
    from icm.api import claims_table
    from icm.finetune import examples_digest, sft_example
    from icm.iterative import IterativeFinetuning
    from icm.search import BatchResult

    table = claims_table([{"id": str(i), "prompt": f"claim {i}"} for i in range(4)])
    cfg = RunConfig(iterative=True, cache="off")
    log: list[str] = []
    iterative = IterativeFinetuning(cfg, table, tmp_path, log.append)
    iterative.for_batch(0, [0, 1], [])
    assert opened_in_process == ["open None"]  # the packaged base model
    assert log == ["batch 1: scored by hash-scorer of None"]
    # Batch 2 reuses a finished fine-tune (as a resumed run does), so nothing trains here.
    done = BatchResult(
        batch=0, claim_ids=["0", "1"], labels=[True, False], scores=[1.0, -1.0], utility=0.0,
        mp=0.0, inconsistencies=0, n_requests=3, n_cache_hits=0, seconds=0.0,
    )  # fmt: skip
    examples = [sft_example("claim 0", True, table.label_words)]
    examples.append(sft_example("claim 1", False, table.label_words))
    tuned = tmp_path / "models" / "after-batch-01"
    tuned.mkdir(parents=True)
    record = {
        "base": "embedded",
        "examples_digest": examples_digest(examples),
        "config": dataclasses.asdict(iterative.finetune_cfg),
        "n_examples": 2,
        "epoch_loss": [0.5],
        "train_seconds": 1.0,
        "adapter_fingerprint": "abc",
    }
    (tuned / "finetune.json").write_text(json.dumps(record))
    iterative._scorers[0].stats.requests = 3
    iterative.for_batch(1, [2, 3], [done])
    # The base is released before the fine-tuned model is opened: one model at a time.
    assert opened_in_process == ["open None", "close None", f"open {tuned}"]
    iterative.close()
    assert opened_in_process[-1] == f"close {tuned}"
    batches = json.loads((tmp_path / "iterative.json").read_text())["batches"]
    assert [(b["model"], b["scored_by"], b["requests"]) for b in batches] == [
        ("embedded", "hash-scorer of None", 3),
        (str(tuned), f"hash-scorer of {tuned}", 0),
    ]
    assert batches[1]["finetune"]["adapter_fingerprint"] == "abc"


def test_eval_finetuned_opens_the_base_and_each_model_through_the_registry(
    tmp_path: Path, opened_in_process: list[str]
) -> None:
    from icm.evaluate import EvalConfig, evaluate_finetuned

    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"GGUF" + bytes(12))
    adapters = [tmp_path / "a", tmp_path / "b"]
    for adapter in adapters:
        adapter.mkdir()
        (adapter / "finetune.json").write_text(json.dumps({"base": str(gguf)}))
    # The model flags do not name the models of --finetuned (their records do).
    model = RunConfig(cache="off", model="m", base_url=["http://127.0.0.1:1/v1"])
    cfg = EvalConfig(labels="golden", testbed="arithmetic", train_size=8, test_size=6, model=model)
    results = evaluate_finetuned(cfg, adapters)
    a, b = (str(x) for x in adapters)
    assert opened_in_process == [
        f"open {gguf}",
        f"close {gguf}",
        f"open {a}",
        f"close {a}",
        f"open {b}",
        f"close {b}",
    ]
    assert [r.details["model_source"] for r in results] == ["base", a, b]
    assert [r.details["model"] for r in results] == [
        f"hash-scorer of {gguf}",
        f"hash-scorer of {a}",
        f"hash-scorer of {b}",
    ]


def test_the_synthetic_model_scores_only_the_search() -> None:
    """synthetic is icm run's stand-in: it has no label scorer, so eval refuses it."""
    from icm.evaluate import EvalConfig, run_eval

    with open_model(RunConfig(model="synthetic")) as model, pytest.raises(ConfigError) as e:
        model.scorer(("True", "False"))
    assert str(e.value).startswith("--model synthetic: a stand-in for the search only")
    cfg = EvalConfig(labels="golden", testbed="arithmetic", model=RunConfig(model="synthetic"))
    with pytest.raises(ConfigError, match="--model synthetic: a stand-in"):
        run_eval(cfg)


def test_icm_run_opens_its_model_through_the_registry_before_the_run_directory(
    tmp_path: Path, opened: list[str]
) -> None:
    from icm.run import start_run

    out = tmp_path / "run"
    cfg = RunConfig(testbed="arithmetic", size=8, K=5, cache="off", out=str(out))
    start_run(cfg, progress=False)
    # The scorer too is made (and the prompts checked) before the run directory exists.
    assert opened == [
        "open (out exists: False)",
        "scorer True/False (out exists: False)",
        "close",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["scorer"] == "model: hash-scorer"


def test_a_model_that_fails_to_open_leaves_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from icm.errors import BackendError
    from icm.run import start_run

    @contextlib.contextmanager
    def failing(cfg: RunConfig) -> Iterator[OpenModel]:
        raise BackendError("the server did not start")
        yield  # pragma: no cover

    monkeypatch.setitem(MODELS, "embedded", failing)
    out = tmp_path / "run"
    with pytest.raises(BackendError, match="did not start"):
        start_run(RunConfig(testbed="arithmetic", size=8, K=5, out=str(out)), progress=False)
    assert not out.exists()


def test_icm_eval_and_the_api_open_their_model_through_the_registry(opened: list[str]) -> None:
    from icm.api import claims_table, label
    from icm.evaluate import EvalConfig, run_eval

    model = RunConfig(cache="off")
    cfg = EvalConfig(labels="golden", testbed="arithmetic", train_size=8, test_size=6, model=model)
    result = run_eval(cfg)
    assert result.details["model"] == "hash-scorer" and result.n_test == 6
    assert opened == ["open (out exists: False)", "scorer True/False (out exists: False)", "close"]
    opened.clear()
    table = claims_table(
        [{"id": str(i), "prompt": f"claim {i}"} for i in range(4)], label_words=("Yes", "No")
    )
    labels = label(table, K=5, zero_shot=False, cache="off")
    assert len(labels.records()) == 4
    assert opened == ["open (out exists: False)", "scorer Yes/No (out exists: False)", "close"]


def test_icm_replicate_opens_the_model_once(tmp_path: Path, opened: list[str]) -> None:
    """2 testbeds x 2 seeds: every ICM run and every baseline on one model (the embedded
    server started 28 times before)."""
    from icm.replicate import ReplicateConfig, run_replicate

    cfg = ReplicateConfig(
        testbeds=["arithmetic", "capitals"],
        seeds=2,
        train_size=8,
        test_size=6,
        run=RunConfig(K=5, cache="off"),
        out=tmp_path / "rep",
    )
    cells = run_replicate(cfg, log=lambda _: None)
    assert len(cells) == 2 * 2 * 6  # icm and 5 baselines (no chat model) per testbed and seed
    assert opened[0] == "open (out exists: False)" and opened[-1] == "close"
    assert sum(e.startswith("open") for e in opened) == sum(e == "close" for e in opened) == 1
    # A scorer per run and evaluation, on the testbed's label words.
    assert len([e for e in opened if e.startswith("scorer")]) >= len(cells)


def test_eval_out_writes_the_predictions_it_promises(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from icm.cli import main
    from icm.testbeds import LoadOptions
    from icm.testbeds.loading import load_table

    out = tmp_path / "eval"
    code = main(
        ["eval", "--labels", "golden", "--testbed", "arithmetic", "--train-size", "8",
         "--test-size", "6", "--seed", "2", "--cache", "off", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "eval.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    test = load_table("arithmetic", "test", LoadOptions(size=6, seed=2))
    assert [r["id"] for r in rows] == test.ids and len(rows) == summary["n_test"] == 6
    for row, claim in zip(rows, test.claims, strict=True):
        assert set(row) == {"id", "group", "gold", "prediction", "gap", "source"}
        assert (row["group"], row["gold"], row["source"]) == (claim.group, claim.gold, "golden")
        assert row["prediction"] == (row["gap"] > 0)
    assert len({r["gap"] for r in rows}) > 1  # the model's gaps, claim by claim
    correct = [r["prediction"] == r["gold"] for r in rows]
    assert summary["accuracy"] == pytest.approx(sum(correct) / len(correct))


SERVER_START = re.compile(r"embedded llama\.cpp server pid \d+")


@pytest.mark.model
def test_icm_replicate_starts_the_embedded_server_once(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "replicate", "--testbeds", "arithmetic,capitals",
         "--seeds", "2", "--train-size", "8", "--test-size", "6", "--K", "10",
         "--cache", "off", "--out", str(tmp_path / "rep")],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(SERVER_START.findall(r.stderr)) == 1, r.stderr
    cells = (tmp_path / "rep" / "cells.jsonl").read_text().splitlines()
    assert len(cells) == 2 * 2 * 6


def test_registry_names_every_model() -> None:
    assert tuple(registry.MODELS) == ("embedded", "completions", "transformers", "synthetic")


def test_eval_finetuned_names_a_missing_base_by_its_record(
    tmp_path: Path, opened_in_process: list[str]
) -> None:
    """The registry's own check named --model-path, which `icm eval --finetuned` is not
    given: the base comes from the fine-tune's record."""
    from icm.evaluate import EvalConfig, evaluate_finetuned

    adapter = tmp_path / "a"
    adapter.mkdir()
    gone = tmp_path / "moved.gguf"
    (adapter / "finetune.json").write_text(json.dumps({"base": str(gone)}))
    cfg = EvalConfig(labels="golden", testbed="arithmetic", model=RunConfig(cache="off"))
    with pytest.raises(ConfigError) as e:
        evaluate_finetuned(cfg, [adapter])
    assert str(e.value).startswith(f"--finetuned {adapter}: its base model '{gone}'")
    assert opened_in_process == []
