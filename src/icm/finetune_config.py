"""The settings of a LoRA fine-tune (icm.finetune), each declared once as the `icm finetune`
option that sets it; `icm run --iterative` takes the same settings under --finetune-* names
(icm.config). Apart from icm.finetune so that icm.config can read these declarations
without importing the training code."""

from __future__ import annotations

from dataclasses import dataclass

from icm.errors import ConfigError
from icm.option import check_ranges, option, options_of


@dataclass
class FinetuneConfig:
    base: str = option(
        "--base",
        "embedded",
        group="finetune",
        help="base model: GGUF file, Hugging Face folder or 'embedded'",
    )
    epochs: float = option(
        "--epochs",
        4.0,
        group="finetune",
        low=0.0,
        low_excluded=True,
        high=1e4,
        help="training epochs",
    )
    learning_rate: float = option(
        "--lr", 5e-4, group="finetune", low=0.0, low_excluded=True, high=1.0, help="learning rate"
    )
    batch_size: int = option(
        "--batch-size",
        4,
        group="finetune",
        low=1,
        high=2**31 - 1,
        help="examples per training step",
    )
    lora_r: int = option("--lora-r", 8, group="finetune", low=1, high=65536, help="LoRA rank")
    lora_alpha: int = option(
        "--lora-alpha", 16, group="finetune", low=1, high=2**31 - 1, help="LoRA alpha"
    )
    lora_dropout: float = 0.0
    max_length: int = option(
        "--max-length",
        1024,
        group="finetune",
        low=1,
        high=2**31 - 1,
        help="maximum tokens per training example",
    )
    seed: int = 0

    def validate(self) -> None:
        check_ranges(self)
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout:g}")


FINETUNE_OPTIONS = options_of(FinetuneConfig)
