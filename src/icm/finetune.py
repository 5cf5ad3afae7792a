"""Fine-tuning a base model on labels: LoRA with TRL's SFTTrainer and PEFT.

Each labelled claim becomes one prompt-completion example: the claim prompt as the search
scores it (trailing spaces dropped) and the label word with its leading space, the token
that the scorer reads. The loss is on the completion only, so the model learns to answer
the claim, not to write claims. The output folder is a PEFT adapter plus `finetune.json`
(base model, settings, the examples' source, the loss of every step, versions), which is
all that `load_causal_lm` needs to serve it again.

Used by `icm finetune` (labels of finished runs, or their gold labels for the golden-label
comparison) and by `icm run --iterative` (the labels of the batches done so far).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from icm.backends.transformers_scorer import (
    FINETUNE_RECORD,
    folder_fingerprint,
    quiet_transformers,
    require_finetune_extra,
    resolve_model_folder,
)
from icm.errors import ConfigError
from icm.finetune_config import FinetuneConfig
from icm.run_dir import now_iso, versions, write_json, write_jsonl


def sft_example(prompt: str, label: bool, label_words: tuple[str, str]) -> dict[str, str]:
    word = label_words[0] if label else label_words[1]
    return {"prompt": prompt.rstrip(" "), "completion": " " + word}


def examples_digest(examples: Sequence[dict[str, str]]) -> str:
    """Identifies a training set: an adapter trained on the same examples is reused."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e["prompt"], e["completion"]]).encode())
    return digest.hexdigest()[:16]


def epoch_losses(history: Sequence[dict[str, Any]]) -> list[float]:
    """Mean training loss of each epoch, from the trainer's per-step log."""
    by_epoch: dict[int, list[float]] = {}
    for h in history:
        # A step logged at epoch e (1-based, fractional) belongs to epoch ceil(e) - 1.
        index = max(0, math.ceil(h["epoch"]) - 1)
        by_epoch.setdefault(index, []).append(h["loss"])
    return [sum(v) / len(v) for _, v in sorted(by_epoch.items())]


def training_versions() -> dict[str, str]:
    """The training libraries' versions: a fine-tune is reproduced with the same ones."""
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "peft", "trl", "accelerate")}


def finetune(
    examples: Sequence[dict[str, str]],
    cfg: FinetuneConfig,
    out: Path,
    *,
    source: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a LoRA adapter on `examples` (prompt/completion) and write it to `out`.
    Returns the record written to out/finetune.json."""
    cfg.validate()
    if not examples:
        raise ConfigError("fine-tuning: no labelled examples")
    require_finetune_extra()
    quiet_transformers()
    import datasets
    import torch

    datasets.disable_progress_bars()
    folder = resolve_model_folder(cfg.base)
    out.mkdir(parents=True, exist_ok=True)
    (out / FINETUNE_RECORD).unlink(missing_ok=True)  # an interrupted run is not finished
    write_jsonl(out / "train.jsonl", examples)
    torch.manual_seed(cfg.seed)
    on_gpu = torch.cuda.is_available()  # the trainer then trains there, in bfloat16
    work = out / ".trainer"
    trainer = _sft_trainer(examples, cfg, folder, work, on_gpu)
    log(
        f"fine-tuning {folder.name} on {len(examples)} examples "
        f"({cfg.epochs:g} epochs, LoRA r {cfg.lora_r}; "
        f"{'GPU, bfloat16' if on_gpu else 'CPU, float32'})"
    )
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    history = [
        {"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]}
        for h in trainer.state.log_history
        if "loss" in h
    ]
    _save_adapter(trainer, out, work)
    losses = epoch_losses(history)
    record = {
        "base": str(cfg.base),
        "base_folder": str(folder),
        "config": asdict(cfg),
        "n_examples": len(examples),
        "examples_digest": examples_digest(examples),
        "source": source or {},
        "loss_history": history,
        "epoch_loss": losses,
        "train_seconds": round(seconds, 3),
        # Where it trained: bfloat16 on a GPU, float32 on the CPU (the losses differ a little).
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "dtype": "bfloat16" if on_gpu else "float32",
        "adapter_fingerprint": folder_fingerprint(out),
        "versions": {**versions(), **training_versions()},
        "created": now_iso(),
    }
    write_json(out / FINETUNE_RECORD, record)  # last: its presence means finished
    log(
        "fine-tuned in {:.0f} s; loss by epoch: {}".format(
            seconds, ", ".join(f"{x:.3f}" for x in losses)
        )
    )
    return record


def _sft_trainer(
    examples: Sequence[dict[str, str]], cfg: FinetuneConfig, folder: Path, work: Path, on_gpu: bool
) -> Any:
    """A trl SFTTrainer for a LoRA adapter on the base model in `folder`: loss on the
    completion only, constant learning rate, no checkpoints, every step logged."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # Eager attention: what Gemma 3 is trained with (the SDPA path differs in padding).
    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        dtype=torch.bfloat16 if on_gpu else torch.float32,
        attn_implementation="eager",
    )
    args = SFTConfig(
        output_dir=str(work),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_length=cfg.max_length,
        completion_only_loss=True,
        bf16=on_gpu,
        fp16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([dict(e) for e in examples]),
        processing_class=tokenizer,
        peft_config=lora,
    )
    # With tqdm off the trainer prints every log dict; the record keeps them.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _save_adapter(trainer: Any, out: Path, work: Path) -> None:
    """The adapter alone in `out`: the trainer's work folder and copies of the base
    model's files go."""
    trainer.save_model(str(out))
    shutil.rmtree(work, ignore_errors=True)
    # The tokenizer is the base model's (loaded from there); no 33 MB copy per adapter.
    for name in ("tokenizer.json", "tokenizer_config.json", "training_args.bin"):
        (out / name).unlink(missing_ok=True)


def finished_record(out: Path, digest: str, cfg: FinetuneConfig) -> dict[str, Any] | None:
    """The record of a finished fine-tune in `out` on the same examples and settings."""
    path = out / FINETUNE_RECORD
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("examples_digest") == digest and record.get("config") == asdict(cfg):
        return record
    return None
