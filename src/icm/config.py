"""The resolved configuration of a run: every knob, validated, saved in the run directory.

Flag names follow the original code (--alpha --seed --model --batch_size --num_seed --K
--consistency_fix_K --decay --initial_T --final_T --scheduler). The defaults differ from
the original's where a field's comment says so: `size` (how many claims to label) is
small so that `icm run` finishes in minutes on a laptop CPU; mutual predictability is
`mp="sparse"` with `context_k=4` demonstrations per claim (the original: exact, every other
labeled claim of the batch; `--mp exact`); `algorithm="paper"` follows the paper's text
where the original code differs (docs/algorithm.md lists each difference and its flag).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from icm import _icm_core as core
from icm.errors import ConfigError

# The model the embedded llama.cpp server loads when neither --base-url nor --model-path
# is given (a base, not instruction-tuned, model shipped on PyPI).
DEFAULT_MODEL = "embedded"
SYNTHETIC_MODEL = "synthetic"


_INT32_MAX = 2**31 - 1
AUTO_PARALLEL_BATCHES = 4
# (field, lowest, highest) of the integer options.
_INT_RANGES: tuple[tuple[str, int, int], ...] = (
    ("seed", 0, 2**63 - 1),
    ("batch_size", 1, _INT32_MAX),
    ("num_seed", 0, _INT32_MAX),
    ("K", 0, _INT32_MAX),
    ("consistency_fix_K", 0, _INT32_MAX),
    ("context_k", 1, _INT32_MAX),
    ("logprobs", 1, _INT32_MAX),
    ("concurrency", 1, 1024),
    ("lora_r", 1, 65536),
    ("prefetch_depth", 0, core.MAX_PREFETCH_DEPTH),
    ("parallel_batches", 0, 1024),
)
# (field, lowest, highest, lowest excluded) of the real-valued options.
_FLOAT_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("alpha", 0.0, 1e6, False),
    ("initial_T", 0.0, 1e6, True),
    ("final_T", 0.0, 1e6, True),
    ("log_beta", 0.0, 1e6, False),
    ("context_regrow", 1.0, 1e6, True),
    ("timeout", 0.0, 1e7, True),
    ("checkpoint_every", 0.0, 1e6, False),
    ("finetune_epochs", 0.0, 1e4, True),
    ("finetune_lr", 0.0, 1.0, True),
)

# The paper's setting: batches of 256 claims with alpha 30. With the original code's
# mean-gap MP, one claim's term weighs alpha / N against one violated constraint, so a
# batch of N claims keeps the paper's balance with alpha = 30 * N / 256.
PAPER_ALPHA = 30.0
PAPER_BATCH = 256


def balanced_alpha(n_batch: int) -> float:
    """The alpha that weighs one claim's MP term against one inconsistency as the paper's
    batches of 256 claims with alpha 30 do (for the mean-gap objective)."""
    return round(PAPER_ALPHA * max(1, n_batch) / PAPER_BATCH, 4)


# Fields whose flag is spelt with dashes only.
_DASHED_FLAGS = {
    "finetune_lr": "finetune-lr",
    "finetune_epochs": "finetune-epochs",
    "lora_r": "lora-r",
    "checkpoint_every": "checkpoint-every",
    "test_fraction": "test-fraction",
}


@dataclass
class RunConfig:
    # What to label
    testbed: str = "capitals"
    split: str = "train"
    size: int | None = 16  # claims to label (whole groups); None = the whole split
    data_dir: str | None = None
    consistency: str = "default"  # default (by construction) | none | paper
    # Label only the consistency groups outside a held-out fraction of the split, split as
    # `icm eval --test-fraction F --seed S` splits it (icm replicate on a claims file).
    test_fraction: float | None = None
    test_fraction_seed: int = 0
    # The objective and the search (the original code's flags and defaults)
    # None: the alpha that keeps the paper's balance (30 at 256 claims per batch) for the
    # claims per batch actually used, 30 * N / 256 (mean-gap MP); `--alpha 30` is the
    # original code's value whatever N. See docs/algorithm.md.
    alpha: float | None = None
    seed: int = 27565976
    batch_size: int = 256
    num_seed: int = 8
    K: int = 3000
    consistency_fix_K: int = 10
    decay: float = 0.99
    initial_T: float = 10.0
    final_T: float = 0.01
    scheduler: str = "log"  # log | exp
    algorithm: str = "paper"  # paper | code: see docs/algorithm.md
    log_beta: float | None = None  # None: 0.99 (paper) or 2 (code)
    mp: str = "sparse"  # exact (the original: all other labeled claims) | sparse
    context_k: int = 4
    context_regrow: float = 1.25
    mp_objective: str = "mean-gap"  # mean-gap (the original code) | sum-logprob (paper text)
    # Where the search starts: random (num_seed random labels, the paper) | zero-shot (every
    # claim labelled by the model's zero-shot answer; beyond the paper, see docs/results).
    init: str = "random"
    # Score every claim alone first and compare ICM's labels with those zero-shot labels
    # (icm.zero_shot); --no-zero-shot skips it.
    zero_shot: bool = True
    # Speculative prefetch: rounds of scorer calls looked ahead (0: none). Same labels and
    # trace; fewer rounds for more requests (docs/performance.md).
    prefetch_depth: int = 0
    # Batches searched at once over one scorer (same labels and trace as one after
    # another). 0: auto, AUTO_PARALLEL_BATCHES against a model server, 1 otherwise.
    parallel_batches: int = 0
    # The model
    model: str = DEFAULT_MODEL  # "embedded", "synthetic", or the server's model name
    base_url: list[str] = field(default_factory=list)
    model_path: str | None = None
    logprobs: int = 20
    concurrency: int = 4
    timeout: float = 120.0
    keep_trailing_space: bool = False
    cache: str = "default"  # the response cache: "default" (user cache dir), "off", or a path
    # Seconds between checkpoints within a batch (0: every step); see docs/reliability.md.
    checkpoint_every: float = 2.0
    # Iterative fine-tuning (the paper's loop over batches; needs the 'finetune' extra)
    iterative: bool = False
    finetune_epochs: float = 4.0
    finetune_lr: float = 5e-4
    lora_r: int = 8
    # Output
    out: str | None = None
    # A named set of defaults (PRESETS) applied under the flags given explicitly.
    preset: str | None = None

    def validate(self) -> None:
        def bad(flag: str, why: str) -> None:
            raise ConfigError(f"--{_DASHED_FLAGS.get(flag, flag)}: {why}")

        if self.size is not None and self.size < 1:
            bad("size", f"must be >= 1 ('all' for the whole split), got {self.size}")
        # The core holds these in fixed-width integers: out of range, the binding would
        # raise a TypeError instead of naming the flag.
        for name, low, high in _INT_RANGES:
            value = getattr(self, name)
            if value < low:
                bad(name, f"must be >= {low}, got {value}")
            if value > high:
                bad(name, f"must be at most {high}, got {value}")
        # Finite and within a range where U = alpha * MP - inconsistencies and the
        # temperature stay finite numbers (an infinite U makes every move look equal).
        for name, lowest, highest, open_low in _FLOAT_RANGES:
            number = getattr(self, name)
            if number is None:
                continue
            if not (math.isfinite(number) and (number > lowest if open_low else number >= lowest)):
                bad(
                    name,
                    f"must be finite and {'>' if open_low else '>='} {lowest:g}, got {number:g}",
                )
            if number > highest:
                bad(name, f"must be at most {highest:g}, got {number:g}")
        if self.scheduler not in ("log", "exp"):
            bad("scheduler", f"must be 'log' or 'exp', got '{self.scheduler}'")
        if self.algorithm not in ("paper", "code"):
            bad("algorithm", f"must be 'paper' or 'code', got '{self.algorithm}'")
        if self.mp not in ("exact", "sparse"):
            bad("mp", f"must be 'exact' or 'sparse', got '{self.mp}'")
        if self.mp_objective not in ("mean-gap", "sum-logprob"):
            bad("mp_objective", f"must be 'mean-gap' or 'sum-logprob', got '{self.mp_objective}'")
        if self.test_fraction is not None and not (
            math.isfinite(self.test_fraction) and 0 < self.test_fraction < 1
        ):
            bad("test_fraction", f"must be between 0 and 1, got {self.test_fraction:g}")
        if self.init not in ("random", "zero-shot"):
            bad("init", f"must be 'random' or 'zero-shot', got '{self.init}'")
        if self.init == "zero-shot" and not self.zero_shot:
            bad("init", "zero-shot starts from the zero-shot pass, which --no-zero-shot skips")
        if self.init == "zero-shot" and self.iterative:
            bad("init", "zero-shot is not available with --iterative")
        if self.consistency not in ("default", "none", "paper"):
            bad("consistency", f"must be default, none or paper, got '{self.consistency}'")
        if self.iterative:
            if self.base_url:
                bad(
                    "iterative",
                    "each batch is scored by the model fine-tuned on the batches before it, "
                    "which icm serves in process: give the base model with --model-path "
                    "(GGUF file or Hugging Face folder) instead of --base-url",
                )
            if self.model != "embedded":
                bad("iterative", f"needs a language model, not --model {self.model}")
            # The fine-tuning settings (icm.iterative.finetune_config) are in the ranges
            # above: lora_alpha is 2 * lora_r, the others FinetuneConfig's defaults.
        try:
            self.search_params().validate()
        except ValueError as e:
            # The core names its own field; map it back to the flag.
            raise ConfigError(f"--{e}") from None

    def batch_claims(self, n_claims: int) -> int:
        """Claims per search batch when labelling n_claims (batches never exceed the split)."""
        return max(1, min(n_claims, self.batch_size))

    def resolved_alpha(self, n_batch: int = 256) -> float:
        """--alpha as given, or by default the paper's balance for batches of n_batch."""
        if self.alpha is not None:
            return self.alpha
        return balanced_alpha(n_batch) if self.mp_objective == "mean-gap" else PAPER_ALPHA

    def search_params(self, n_batch: int = 256) -> core.SearchParams:
        """The core's parameters; n_batch (claims per batch) resolves the default alpha."""
        p = core.search_params_code() if self.algorithm == "code" else core.search_params_paper()
        p.alpha = self.resolved_alpha(n_batch)
        p.seed = self.seed
        p.num_seed = self.num_seed
        p.max_iterations = self.K
        p.consistency_fix_k = self.consistency_fix_K
        p.decay = self.decay
        p.initial_t = self.initial_T
        p.final_t = self.final_T
        p.schedule = core.Schedule.LOG if self.scheduler == "log" else core.Schedule.EXP
        if self.log_beta is not None:
            p.log_beta = self.log_beta
        p.mp_mode = core.MpMode.EXACT if self.mp == "exact" else core.MpMode.SPARSE
        p.context_k = self.context_k
        p.context_regrow = self.context_regrow
        p.prefetch_depth = self.prefetch_depth
        p.mp_objective = (
            core.MpObjective.MEAN_LOGIT_GAP
            if self.mp_objective == "mean-gap"
            else core.MpObjective.SUM_LOGPROB
        )
        return p

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")
        hints = get_type_hints(cls)
        for name, value in data.items():
            expected = hints[name]
            if not _has_type(value, expected):
                raise ConfigError(
                    f"{source}: field '{name}' must be {_type_name(expected)}, got {value!r}"
                )
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the run configuration ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise ConfigError(f"{path}: field 'config' is missing")
        return cls.from_dict(data["config"], source=str(path))

    # Fields that change how a run is carried out but not its labels: a resumed run may
    # give them anew.
    OPERATIONAL_FIELDS = frozenset(
        {
            "cache",
            "concurrency",
            "timeout",
            "out",
            "base_url",
            "checkpoint_every",
            "prefetch_depth",
            "parallel_batches",
        }
    )

    def differences(self, other: RunConfig) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


# Presets: named defaults for a whole way of running, each documented in docs/algorithm.md
# (icm.presets applies them).
PRESETS: dict[str, dict[str, Any]] = {
    # Everything the original code does (src/experiments/ICM.py and its command line):
    # its algorithm (schedule counter, log beta 2, ConsistencyFix, seeds = the first
    # num_seed claims of the batch), exact MP with the mean logit gap, its consistency
    # keys, prompts ending in "is " as sent, and one batch of 256 claims with alpha 30.
    "original": {
        "algorithm": "code",
        "log_beta": None,
        "mp": "exact",
        "mp_objective": "mean-gap",
        "consistency": "paper",
        "keep_trailing_space": True,
        "alpha": 30.0,
        "batch_size": 256,
        "size": 256,
        "num_seed": 8,
        "K": 3000,
        "consistency_fix_K": 10,
        "scheduler": "log",
        "decay": 0.99,
        "initial_T": 10.0,
        "final_T": 0.01,
        "logprobs": 20,
    },
}


def _has_type(value: Any, expected: Any) -> bool:
    """isinstance for the annotations used in RunConfig (int, float, str, bool, list[str]
    and their unions with None). An int is a float; a bool is neither."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return any(_has_type(value, t) for t in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(expected))
    if expected is type(None):
        return "null"
    if typing.get_origin(expected) is list:
        return f"a list of {_type_name(typing.get_args(expected)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        expected, str(expected)
    )
