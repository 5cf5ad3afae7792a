"""`icm run --iterative`: the paper's loop of labelling and fine-tuning over batches.

Batch 1 is labelled by ICM with the base model M_0. Before batch j+1, the base model is
fine-tuned (LoRA, icm.finetune) on the ICM labels of batches 1..j, giving M_j, and ICM
labels batch j+1 with M_j as its scorer. Every M_j is fine-tuned from the base, not from
M_{j-1}, as in the paper. All batches, the first included, are scored in process by
transformers (backends/transformers_scorer.py), so that a change between batches comes
from fine-tuning and not from a change of inference engine. Each batch's model is opened
through the model registry (registry.open_in_process) and released before the next one is
fine-tuned and loaded: one model in memory at a time.

The models are kept in RUN_DIR/models/after-batch-NN/ (adapter + finetune.json); a resumed
run reuses a finished one trained on the same examples with the same settings.
RUN_DIR/iterative.json says which model scored which batch, with its request counts and
the fine-tune's loss by epoch.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from icm import _icm_core as core
from icm.backends.base import BackendStats, CoreScorer, LabelScorer
from icm.backends.registry import open_in_process
from icm.config import RunConfig
from icm.finetune import examples_digest, finetune, finished_record, sft_example
from icm.finetune_config import FinetuneConfig
from icm.run_dir import write_json
from icm.search import BatchResult
from icm.testbeds.base import ClaimTable

ITERATIVE_RECORD = "iterative.json"


def finetune_config(cfg: RunConfig) -> FinetuneConfig:
    """The fine-tuning settings of an iterative run (RunConfig.validate checks their ranges)."""
    return FinetuneConfig(
        base=cfg.model_path or "embedded",
        epochs=cfg.finetune_epochs,
        learning_rate=cfg.finetune_lr,
        lora_r=cfg.lora_r,
        lora_alpha=2 * cfg.lora_r,
        seed=cfg.seed,
    )


class IterativeFinetuning:
    """The scorer of an iterative run (a search.ScorerAfterBatches)."""

    def __init__(
        self,
        cfg: RunConfig,
        table: ClaimTable,
        run_dir: Path,
        log: Callable[[str], None],
        wrap: Callable[[LabelScorer], LabelScorer] = lambda s: s,
    ) -> None:
        self.cfg = cfg
        self.table = table
        self.run_dir = run_dir
        self.log = log
        self.wrap = wrap  # the response cache, when the run has one
        self.finetune_cfg = finetune_config(cfg)
        self.records: list[dict[str, Any]] = []
        self._scorers: list[LabelScorer] = []  # one per batch, in record order
        self._model = contextlib.ExitStack()  # the batch's open model and its scorer
        self._index = {c.id: i for i, c in enumerate(table.claims)}

    def model_for_batch(
        self, batch: int, completed: list[BatchResult]
    ) -> tuple[str, dict[str, Any] | None]:
        """The model that labels `batch`: the base for the first, else the base fine-tuned
        on the labels of every batch before it (with a summary of that fine-tune)."""
        if batch == 0:
            return self.finetune_cfg.base, None
        words = self.table.label_words
        examples = [
            sft_example(self.table.claims[self._index[cid]].prompt, label, words)
            for done in completed
            for cid, label in zip(done.claim_ids, done.labels, strict=True)
            if label is not None
        ]
        out = self.run_dir / "models" / f"after-batch-{batch:02d}"
        record = finished_record(out, examples_digest(examples), self.finetune_cfg)
        if record is not None:
            self.log(f"batch {batch + 1}: reusing the model fine-tuned before in {out}")
        else:
            self.log(
                f"batch {batch + 1}: fine-tuning the base model on the ICM labels of "
                f"batches 1-{batch} ({len(examples)} claims)"
            )
            record = finetune(
                examples,
                self.finetune_cfg,
                out,
                source={"run": str(self.run_dir), "batches": list(range(batch)), "labels": "icm"},
                log=self.log,
            )
        summary = {
            "n_examples": record["n_examples"],
            "epoch_loss": record["epoch_loss"],
            "train_seconds": record["train_seconds"],
            "adapter_fingerprint": record["adapter_fingerprint"],
        }
        return str(out), summary

    def for_batch(
        self, batch: int, indices: list[int], completed: list[BatchResult]
    ) -> core.Scorer:
        del indices  # every claim of the batch is scored by the same model
        if not self.records and batch > 0:
            self.records = self._earlier_records(batch)  # a resumed run
        self._close_batch()
        source, finetune_summary = self.model_for_batch(batch, completed)
        gc.collect()  # what fine-tuning left, before loading the next model
        model = self._model.enter_context(open_in_process(self.cfg, source))
        scorer = self._model.enter_context(model.scorer(self.table.label_words))
        self.log(f"batch {batch + 1}: scored by {scorer.model_id}")
        self.records.append(
            {
                "batch": batch,
                "model": source,
                "scored_by": scorer.model_id,
                "finetune": finetune_summary,
            }
        )
        self._scorers.append(scorer)
        self._write()
        return CoreScorer(self.wrap(scorer))

    def _earlier_records(self, batch: int) -> list[dict[str, Any]]:
        path = self.run_dir / ITERATIVE_RECORD
        if not path.exists():
            return []
        rows = json.loads(path.read_text()).get("batches", [])
        return [r for r in rows if isinstance(r, dict) and r.get("batch", batch) < batch]

    def _close_batch(self) -> None:
        """Write the finished batch's request counts into its record and release its model
        (the record keeps its name), before the next is fine-tuned and loaded."""
        if self._scorers and self.records:
            last = self._scorers[-1]
            self.records[-1]["requests"] = last.stats.requests
            self.records[-1]["prompt_tokens"] = last.stats.prompt_tokens
        self._model.close()

    def _write(self) -> None:
        write_json(self.run_dir / ITERATIVE_RECORD, {"batches": self.records})

    @property
    def stats(self) -> BackendStats:
        total = BackendStats()
        for s in self._scorers:
            for name, value in s.stats.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def close(self) -> None:
        self._close_batch()
        if self.records:
            self._write()
