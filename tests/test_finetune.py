"""Fine-tuning (issue 9): `icm run --iterative`, `icm finetune`, `icm eval --finetuned`.

The real end-to-end test runs the paper's loop on CPU with the default model itself
(Gemma 3 270M, loaded by transformers from the packaged GGUF): two batches of the built-in
capitals testbed, the second labelled by the model fine-tuned on the first batch's ICM
labels. It checks that the fine-tuned weights differ from the base, that the training loss
went down, and that batch 2's requests were answered by the fine-tuned model. The tests
without a model check the pieces (examples, loss bookkeeping, errors)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from icm.config import RunConfig
from icm.errors import ConfigError, DataError
from icm.finetune import epoch_losses, examples_digest, sft_example
from icm.finetune_config import FinetuneConfig

from .test_cli import icm

# --- without a model ------------------------------------------------------------------


def test_sft_example_matches_what_the_scorer_reads() -> None:
    # The scorer drops the prompt's trailing space and reads the next token, " True".
    e = sft_example("Claim: x.\nI think this claim is ", True, ("True", "False"))
    assert e == {"prompt": "Claim: x.\nI think this claim is", "completion": " True"}
    assert sft_example("p ", False, ("Yes", "No"))["completion"] == " No"


def test_examples_digest_changes_with_one_label() -> None:
    a = [sft_example("p1 ", True, ("True", "False")), sft_example("p2 ", False, ("True", "False"))]
    b = [a[0], sft_example("p2 ", True, ("True", "False"))]
    assert examples_digest(a) == examples_digest(list(a))
    assert examples_digest(a) != examples_digest(b)


def test_a_finished_finetune_is_reused_only_for_the_same_examples_and_settings(
    tmp_path: Path,
) -> None:
    from dataclasses import asdict

    from icm.finetune import finished_record

    examples = [sft_example("p1 ", True, ("True", "False"))]
    cfg = FinetuneConfig()
    assert finished_record(tmp_path, examples_digest(examples), cfg) is None
    record = {"examples_digest": examples_digest(examples), "config": asdict(cfg)}
    (tmp_path / "finetune.json").write_text(json.dumps(record))
    assert finished_record(tmp_path, examples_digest(examples), cfg) == record
    other = [sft_example("p1 ", False, ("True", "False"))]
    assert finished_record(tmp_path, examples_digest(other), cfg) is None
    assert finished_record(tmp_path, examples_digest(examples), FinetuneConfig(epochs=1)) is None


def test_epoch_losses_groups_steps_by_epoch() -> None:
    history = [
        {"epoch": 0.5, "loss": 4.0},
        {"epoch": 1.0, "loss": 2.0},
        {"epoch": 1.5, "loss": 1.0},
        {"epoch": 2.0, "loss": 0.0},
    ]
    assert epoch_losses(history) == [3.0, 0.5]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("epochs", 0, "--epochs"), ("lora_r", 0, "--lora-r"), ("lora_dropout", 1.0, "dropout")],
)
def test_finetune_config_rejects_bad_values(field: str, value: Any, message: str) -> None:
    cfg = FinetuneConfig(**{field: value})
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_iterative_run_refuses_a_server_model() -> None:
    cfg = RunConfig(iterative=True, base_url=["http://127.0.0.1:1/v1"], model="m")
    with pytest.raises(ConfigError, match=r"--iterative.*--model-path"):
        cfg.validate()


def write_run(run_dir: Path, rows: list[dict[str, Any]], **config: Any) -> Path:
    run_dir.mkdir(parents=True)
    cfg = {
        "testbed": "arithmetic",
        "split": "train",
        "model": "embedded",
        "base_url": [],
        "model_path": None,
        **config,
    }
    (run_dir / "config.json").write_text(
        json.dumps({"config": cfg, "testbed": {"label_words": ["True", "False"]}})
    )
    (run_dir / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def test_gold_labels_needed_for_every_claim(tmp_path: Path) -> None:
    from icm.cli.finetune import collect_examples, shared_base
    from icm.export import load_run

    run = write_run(
        tmp_path / "run",
        [
            {"id": "a", "prompt": "A is ", "label": True, "gold": False},
            {"id": "b", "prompt": "B is ", "label": False},
        ],
    )
    runs = [load_run(run)]
    examples = collect_examples(runs, "icm")
    assert [e["completion"] for e in examples] == [" True", " False"]
    assert shared_base(runs) == "embedded"
    with pytest.raises(DataError, match=r"labels.jsonl: claim 'b' has no gold label"):
        collect_examples(runs, "gold")


def test_finetune_of_a_server_run_needs_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from icm.cli import main

    run = write_run(
        tmp_path / "run",
        [{"id": "a", "prompt": "A is ", "label": True}],
        model="meta-llama/Llama-3.1-8B",
        base_url=["http://host:8000/v1"],
    )
    assert main(["finetune", str(run), "--out", str(tmp_path / "ft")]) == 2
    assert "labelled by 'meta-llama/Llama-3.1-8B' on a server" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists()


# --- the real model ----------------------------------------------------------------------

# The README's test command installs the 'finetune' extra; without it these are skipped.
_skip_without_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="the 'finetune' extra is not installed"
)


def needs_torch(test: Callable[..., None]) -> Callable[..., None]:
    """Marked `finetune` (a test tier, see tests/conftest.py); skipped without torch."""
    return pytest.mark.finetune(_skip_without_torch(test))


FINETUNE_TIMEOUT = 1500


@pytest.fixture(scope="module")
def iterative_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The paper's loop, two iterations: 8 capitals claims in 2 batches of 4."""
    out = tmp_path_factory.mktemp("iterative") / "run"
    # fmt: off
    r = icm("run", "--testbed", "capitals", "--size", "8", "--batch_size", "4", "--K", "10",
            "--seed", "3", "--context-k", "2", "--iterative", "--finetune-epochs", "3",
            "--cache", "off", "--quiet", "--out", str(out), timeout=FINETUNE_TIMEOUT)
    # fmt: on
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.mark.model
@needs_torch
def test_iterative_run_labels_batch_two_with_the_finetuned_model(iterative_run: Path) -> None:
    metrics = json.loads((iterative_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["n_batches"] == 2
    record = json.loads((iterative_run / "iterative.json").read_text())["batches"]
    assert [b["batch"] for b in record] == [0, 1]
    first, second = record
    # Batch 1: the base model; batch 2: the adapter trained before it, by fingerprint.
    assert first["finetune"] is None and "+lora-" not in first["scored_by"]
    adapter = iterative_run / "models" / "after-batch-01"
    trained = json.loads((adapter / "finetune.json").read_text())
    assert second["model"] == str(adapter)
    assert f"+lora-{trained['adapter_fingerprint']}" in second["scored_by"]
    assert first["requests"] > 0 and second["requests"] > 0
    assert metrics["iterative"] == record
    assert metrics["backend"]["requests"] == first["requests"] + second["requests"]
    # It was trained on batch 1's ICM labels, and only on them.
    labels = [json.loads(x) for x in (iterative_run / "labels.jsonl").read_text().splitlines()]
    batch1 = {r["prompt"].rstrip(" "): r["label"] for r in labels if r["batch"] == 0}
    examples = [json.loads(x) for x in (adapter / "train.jsonl").read_text().splitlines()]
    assert {e["prompt"]: e["completion"] == " True" for e in examples} == batch1
    assert trained["source"] == {"run": str(iterative_run), "batches": [0], "labels": "icm"}
    assert {"torch", "transformers", "peft", "trl", "git"} <= set(trained["versions"])
    import torch

    assert trained["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    assert (trained["device"] == "cpu") != torch.cuda.is_available()
    # The loss went down.
    losses = trained["epoch_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert all(isinstance(r["label"], bool) for r in labels)


@pytest.mark.model
@needs_torch
def test_finetuned_weights_differ_from_the_base(iterative_run: Path) -> None:
    import torch

    from icm.backends.transformers_scorer import load_causal_lm

    base = load_causal_lm("embedded").model
    tuned = load_causal_lm(iterative_run / "models" / "after-batch-01").model
    base_params = dict(base.named_parameters())
    changed = [
        name
        for name, p in tuned.named_parameters()
        if not torch.equal(p.detach(), base_params[name].detach())
    ]
    # LoRA on every linear layer of every block: the attention and MLP weights move,
    # the embeddings and norms do not.
    assert any("q_proj" in n for n in changed) and any("down_proj" in n for n in changed)
    assert not any("embed_tokens" in n or "norm" in n for n in changed)


def largest_gap_difference(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """The largest difference of the True - False label gap between two scorers' answers
    to the same prompts."""
    return max(abs((ta - fa) - (tb - fb)) for (ta, fa), (tb, fb) in zip(a, b, strict=True))


@pytest.mark.model
@needs_torch
def test_transformers_scorer_agrees_with_llama_cpp() -> None:
    """The in-process scorer (float32 weights dequantized from the GGUF) and the llama.cpp
    server (the quantized file) give nearly the same label gaps on the same prompts."""
    from icm.backends.completions import CompletionsScorer
    from icm.backends.transformers_scorer import TransformersScorer, load_causal_lm

    from .test_backend_completions import icm_prompts, shared_server

    prompts = icm_prompts(4, 3)
    local = TransformersScorer(load_causal_lm("embedded")).score_prompts(prompts)
    with CompletionsScorer([shared_server().base_url], "gemma-3-270m-q4_k_m") as remote:
        served = remote.score_prompts(prompts)
    assert largest_gap_difference(local, served) < 0.5, (local, served)


@pytest.mark.model
@needs_torch
def test_golden_vs_icm_finetune_comparison_in_one_eval(iterative_run: Path, tmp_path: Path) -> None:
    gold_ft = tmp_path / "ft-gold"
    r = icm(
        "finetune",
        str(iterative_run),
        "--labels",
        "gold",
        "--epochs",
        "2",
        "--out",
        str(gold_ft),
        timeout=FINETUNE_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    record = json.loads((gold_ft / "finetune.json").read_text())
    labels = [json.loads(x) for x in (iterative_run / "labels.jsonl").read_text().splitlines()]
    examples = [json.loads(x) for x in (gold_ft / "train.jsonl").read_text().splitlines()]
    assert {e["prompt"]: e["completion"] == " True" for e in examples} == {
        r["prompt"].rstrip(" "): r["gold"] for r in labels
    }
    assert record["source"]["labels"] == "gold" and record["base"] == "embedded"

    icm_ft = iterative_run / "models" / "after-batch-01"
    # fmt: off
    r = icm("eval", "--testbed", "capitals", "--labels", "zero-shot", "--test-size", "8",
            "--finetuned", str(gold_ft), "--finetuned", str(icm_ft), "--out", str(tmp_path / "ev"),
            timeout=FINETUNE_TIMEOUT)
    # fmt: on
    assert r.returncode == 0, r.stderr[-4000:]
    rows = json.loads((tmp_path / "ev" / "eval.json").read_text())["comparison"]
    assert [row["model_source"] for row in rows] == ["base", str(gold_ft), str(icm_ft)]
    assert all(row["n_test"] == 8 and row["source"] == "zero-shot" for row in rows)
    assert "+lora-" not in rows[0]["model"] and "+lora-" in rows[1]["model"]
    assert rows[1]["model"] != rows[2]["model"]
    # Different weights, different predictions: the three columns are not one model.
    accuracies = {row["accuracy"] for row in rows}
    aurocs = {row["auroc"] for row in rows}
    assert len(accuracies | aurocs) > 1


@pytest.mark.model
@needs_torch
def test_plain_run_on_a_finetuned_model_folder(iterative_run: Path, tmp_path: Path) -> None:
    """`icm run --model-path FOLDER`: an `icm finetune` output labels claims in process,
    and the run says which adapter (by fingerprint) answered."""
    adapter = iterative_run / "models" / "after-batch-01"
    out = tmp_path / "run"
    # fmt: off
    r = icm("run", "--testbed", "capitals", "--size", "4", "--K", "4", "--seed", "5",
            "--context-k", "2", "--model-path", str(adapter), "--cache", "off", "--quiet",
            "--out", str(out), timeout=FINETUNE_TIMEOUT)
    # fmt: on
    assert r.returncode == 0, r.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    fingerprint = json.loads((adapter / "finetune.json").read_text())["adapter_fingerprint"]
    assert f"+lora-{fingerprint}" in metrics["scorer"]
    assert metrics["model"] == str(adapter)  # it said "embedded"
    assert metrics["backend"]["requests"] > 0 and metrics["backend"]["prompt_tokens"] > 0
    assert metrics["status"] == "completed" and metrics["n_labeled"] == 4


def test_a_folder_that_is_not_a_model_is_a_one_line_error(tmp_path: Path) -> None:
    r = icm(
        "run",
        "--testbed",
        "capitals",
        "--size",
        "4",
        "--K",
        "2",
        "--model-path",
        str(tmp_path),
        "--cache",
        "off",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"icm: error: --model-path: '{tmp_path}' is a folder, but neither a Hugging Face model "
        "folder (config.json) nor an `icm finetune` output (finetune.json)"
    )


@pytest.mark.model
@needs_torch
def test_merged_gguf_served_by_llama_cpp_scores_like_the_adapter(
    iterative_run: Path, tmp_path: Path
) -> None:
    """`icm merge-gguf`: llama.cpp serving the merged file gives the label gaps that
    transformers gives with the adapter, and the adapted tensors really changed."""
    import gguf
    import numpy as np
    from gguf import quants

    from icm.backends.completions import CompletionsScorer
    from icm.backends.default_model import packaged_model_path
    from icm.backends.embedded import embedded_server
    from icm.backends.transformers_scorer import TransformersScorer, load_causal_lm

    from .test_backend_completions import icm_prompts

    adapter = iterative_run / "models" / "after-batch-01"
    merged = tmp_path / "ft.gguf"
    r = icm("merge-gguf", str(adapter), "--out", str(merged), timeout=FINETUNE_TIMEOUT)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.strip() == str(merged)
    record = json.loads((tmp_path / "ft.json").read_text())
    trained = json.loads((adapter / "finetune.json").read_text())
    assert record["adapter_fingerprint"] == trained["adapter_fingerprint"]
    # LoRA on every linear layer: q, k, v, o, gate, up, down in each of Gemma 3 270M's 18 blocks.
    assert len(record["merged_tensors"]) == 7 * 18

    base = {t.name: t for t in gguf.GGUFReader(packaged_model_path()).tensors}
    out = {t.name: t for t in gguf.GGUFReader(merged).tensors}
    assert out.keys() == base.keys()
    name = "blk.0.attn_q.weight"
    before = quants.dequantize(base[name].data, base[name].tensor_type)
    after = np.asarray(out[name].data)
    assert after.shape == before.shape and not np.array_equal(after, before)
    untouched = "token_embd.weight"
    assert np.array_equal(np.asarray(out[untouched].data), np.asarray(base[untouched].data))

    prompts = icm_prompts(4, 3)
    tuned = TransformersScorer(load_causal_lm(adapter)).score_prompts(prompts)
    with embedded_server(merged) as server, CompletionsScorer([server.base_url], "embedded") as s:
        served = s.score_prompts(prompts)
    # Measured 0.02 on an adapter trained on 32 claims; the base vs transformers test
    # allows 0.5 because there every linear layer is quantized, here none is.
    assert largest_gap_difference(tuned, served) < 0.1, (tuned, served)


@needs_torch
def test_merge_gguf_needs_a_gguf_base(tmp_path: Path) -> None:
    (tmp_path / "finetune.json").write_text(json.dumps({"base": str(tmp_path / "hf-model")}))
    r = icm("merge-gguf", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"icm: error: merge-gguf: the adapter's base '{tmp_path / 'hf-model'}' is not a GGUF "
        "file; a Hugging Face base is served as a folder instead (icm run --model-path "
        "ADAPTER_FOLDER)"
    )


@pytest.mark.model
@needs_torch
def test_killed_iterative_run_resumes_with_its_finetuned_model(tmp_path: Path) -> None:
    """SIGKILL in batch 2, after the fine-tune: the resumed run reuses the saved adapter
    (nothing is trained again) and keeps batch 1's record."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    # fmt: off
    args = ["run", "--testbed", "capitals", "--size", "8", "--batch_size", "4", "--K", "30",
            "--seed", "5", "--context-k", "2", "--iterative", "--finetune-epochs", "2",
            "--cache", "off", "--quiet", "--out", str(out)]
    # fmt: on
    proc = subprocess.Popen([sys.executable, "-m", "icm.cli", *args], stderr=subprocess.PIPE)
    adapter = out / "models" / "after-batch-01"

    def in_batch_two() -> bool:
        # iterative.json gets batch 2's record once M1 is loaded, before batch 2's first
        # step (which scores prompts for seconds): later steps may all hit the score cache
        # and end the run within milliseconds.
        try:
            batches = json.loads((out / "iterative.json").read_text())["batches"]
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return len(batches) == 2

    deadline = time.monotonic() + FINETUNE_TIMEOUT
    while not in_batch_two() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before batch 2 started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trained = (adapter / "finetune.json").read_text()
    before = json.loads((out / "iterative.json").read_text())["batches"]
    assert [b["batch"] for b in before] == [0, 1]

    r = icm("run", "--resume", str(out), "--quiet", timeout=FINETUNE_TIMEOUT)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (adapter / "finetune.json").read_text() == trained  # not trained again
    log = (out / "log.txt").read_text()
    assert "reusing the model fine-tuned before" in log
    after = json.loads((out / "iterative.json").read_text())["batches"]
    assert [b["batch"] for b in after] == [0, 1]
    assert after[0]["scored_by"] == before[0]["scored_by"] and after[0].get("requests")
    assert after[1]["scored_by"] == before[1]["scored_by"] and after[1]["requests"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["n_labeled"] == 8
