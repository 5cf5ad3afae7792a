"""The resolved configuration of a run: every knob, validated, saved in the run directory.

Flag names follow the original code (--alpha --seed --model --batch_size --num_seed --K
--consistency_fix_K --decay --initial_T --final_T --scheduler). The defaults differ from
the original's where a field's help says so: `size` (how many claims to label) is
small so that `icm run` finishes in minutes on a laptop CPU; mutual predictability is
`mp="sparse"` with `context_k=4` demonstrations per claim (the original: exact, every other
labeled claim of the batch; `--mp exact`); `algorithm="paper"` follows the paper's text
where the original code differs (docs/algorithm.md lists each difference and its flag).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from icm import _icm_core as core
from icm.errors import ConfigError
from icm.finetune_config import FINETUNE_OPTIONS
from icm.option import Option, check_ranges, int_or_all, option, option_like, options_of

# The model the embedded llama.cpp server loads when neither --base-url nor --model-path
# is given (a base, not instruction-tuned, model shipped on PyPI).
DEFAULT_MODEL = "embedded"
SYNTHETIC_MODEL = "synthetic"
# --model's help names the stand-in only where the command takes it (icm run).
SYNTHETIC_HELP = "'synthetic' (a stand-in scorer for algorithm checks, NOT a language model), "


_INT32_MAX = 2**31 - 1
AUTO_PARALLEL_BATCHES = 4
# The paper's setting: batches of 256 claims with alpha 30. With the original code's
# mean-gap MP, one claim's term weighs alpha / N against one violated constraint, so a
# batch of N claims keeps the paper's balance with alpha = 30 * N / 256.
PAPER_ALPHA = 30.0
PAPER_BATCH = 256


def balanced_alpha(n_batch: int) -> float:
    """The alpha that weighs one claim's MP term against one inconsistency as the paper's
    batches of 256 claims with alpha 30 do (for the mean-gap objective)."""
    return round(PAPER_ALPHA * max(1, n_batch) / PAPER_BATCH, 4)


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


@dataclass
class RunConfig:
    """Every setting of a run. A field that is a command-line option declares it here, once,
    with option(): its flag, help, choices and default (icm.cli.options makes the argparse
    arguments of every command that takes it; `group`: where --help lists it)."""

    # What to label
    testbed: str = option(
        "--testbed",
        "capitals",
        group="testbed",
        help="testbed name (see `icm testbeds`) or a path to claims .jsonl/.csv",
    )
    split: str = option("--split", "train", group="testbed", help="which split to label")
    size: int | None = option(
        "--size",
        16,
        group="testbed",
        type=int_or_all,
        help="claims to label, in whole consistency groups ('all' = the whole split)",
    )
    data_dir: str | None = option(
        "--data-dir",
        None,
        group="testbed",
        help="folder with external dataset files (default: $ICM_DATA_DIR)",
    )
    consistency: str = option(
        "--consistency",
        "default",
        group="testbed",
        choices=("default", "none", "paper"),
        help="default: relations true by construction; none; paper: the original code's "
        "keys (for truthfulqa they are derived from gold labels, and the run says so)",
    )
    # Label only the consistency groups outside a held-out fraction of the split, split as
    # `icm eval --test-fraction F --seed S` splits it (icm replicate on a claims file).
    test_fraction: float | None = option(
        "--test-fraction",
        None,
        group="held-out",
        type=float,
        metavar="F",
        help="hold out a seeded fraction F of the train split's consistency groups as the "
        "test claims, instead of the test split (needed for a claims file, which has one "
        "split)",
    )
    test_fraction_seed: int = 0
    # The objective and the search (the original code's flags and defaults)
    alpha: float | None = option(
        "--alpha",
        None,
        group="search",
        type=float,
        help="weight of MP against inconsistencies (default: the paper's balance for the "
        "batch actually used, 30 * N / 256 for N claims per batch; --alpha 30 is the "
        "original code's value, see docs/algorithm.md)",
        low=0.0,
        high=1e6,
    )
    seed: int = option(
        "--seed", 27565976, group="search", help="random seed", low=0, high=2**63 - 1
    )
    batch_size: int = option(
        "--batch_size",
        256,
        group="search",
        help="claims per independent search batch",
        low=1,
        high=_INT32_MAX,
    )
    num_seed: int = option(
        "--num_seed",
        8,
        group="search",
        help="claims given random initial labels",
        low=0,
        high=_INT32_MAX,
    )
    K: int = option(
        "--K", 3000, group="search", help="search iterations per batch", low=0, high=_INT32_MAX
    )
    consistency_fix_K: int = option(
        "--consistency_fix_K",
        10,
        group="search",
        help="ConsistencyFix rounds",
        low=0,
        high=_INT32_MAX,
    )
    decay: float = option("--decay", 0.99, group="search", help="exp schedule decay")
    initial_T: float = option(
        "--initial_T",
        10.0,
        group="search",
        help="initial temperature",
        low=0.0,
        low_excluded=True,
        high=1e6,
    )
    final_T: float = option(
        "--final_T",
        0.01,
        group="search",
        help="final temperature",
        low=0.0,
        low_excluded=True,
        high=1e6,
    )
    scheduler: str = option(
        "--scheduler",
        "log",
        group="search",
        choices=("log", "exp"),
        help="log: T = initial_T / (1 + beta ln(1 + n)) with beta 0.99 under --algorithm "
        "paper (the default), 2 under --algorithm code as in the original (--log-beta sets "
        "it; --decay is not used); exp: T = initial_T * decay^n. Both floored at final_T",
    )
    algorithm: str = option(
        "--algorithm",
        "paper",
        group="icm-search",
        choices=("paper", "code"),
        help="paper: Algorithms 1-2 as written; code: the original code's behaviour "
        "where it differs (docs/algorithm.md)",
    )
    log_beta: float | None = option(
        "--log-beta",
        None,
        group="icm-search",
        type=float,
        help="beta of the log schedule (default 0.99 paper, 2 code)",
        low=0.0,
        high=1e6,
    )
    mp: str = option(
        "--mp",
        "sparse",
        group="icm-search",
        choices=("exact", "sparse"),
        help="exact: every labeled claim in context (the original); sparse: a fixed "
        "random context of --context-k claims",
    )
    context_k: int = option(
        "--context-k",
        4,
        group="icm-search",
        help="demonstrations per claim with --mp sparse",
        low=1,
        high=_INT32_MAX,
    )
    context_regrow: float = 1.25
    mp_objective: str = option(
        "--mp-objective",
        "mean-gap",
        group="icm-search",
        choices=("mean-gap", "sum-logprob"),
        help="mean-gap: the original code's mean label-signed logit gap; sum-logprob: the "
        "paper text's sum of log P(label)",
    )
    init: str = option(
        "--init",
        "random",
        group="icm-search",
        choices=("random", "zero-shot"),
        help="random: num_seed random labels (the paper); zero-shot: start from every "
        "claim's zero-shot label (beyond the paper, docs/results/zero-shot-init.md)",
    )
    zero_shot: bool = option(
        "--zero-shot",
        True,
        group="icm-search",
        action=argparse.BooleanOptionalAction,
        help="score every claim alone first and compare ICM with those zero-shot labels in "
        "the summary (one request per claim, through the response cache)",
    )
    prefetch_depth: int = option(
        "--prefetch-depth",
        0,
        group="icm-search",
        help="speculative prefetch: while the search waits for the server, also send the "
        "requests of up to this many later rounds (same labels and trace; fewer rounds, "
        "some wasted requests; 4 suits a remote vLLM server; 0: none)",
        low=0,
        high=core.MAX_PREFETCH_DEPTH,
    )
    prefetch_call_limit: int = option(
        "--prefetch-call-limit",
        0,
        group="icm-search",
        help="with --prefetch-depth: send only speculative calls of at most this many "
        "requests (0: no limit). For --mp exact use 1: it hides the one-request rounds "
        "without speculating whole-batch re-scorings (docs/performance.md)",
        low=0,
        high=_INT32_MAX,
    )
    prefetch_fill: bool = option(
        "--prefetch-fill",
        False,
        group="icm-search",
        action=argparse.BooleanOptionalAction,
        help="with --prefetch-call-limit: a call that is not a whole number of waves of "
        "--concurrency requests also carries the first requests of the speculated calls "
        "above the limit (the next re-scoring), as many as fill its last wave; wrong "
        "guesses cost only slots that were idle (docs/performance.md)",
    )
    parallel_batches: int = option(
        "--parallel-batches",
        0,
        group="icm-search",
        help="batches searched at once, their requests in flight together (same labels "
        f"and trace as one after another; 0: {AUTO_PARALLEL_BATCHES} against a model server, "
        "1 for --model synthetic, an in-process model or --iterative)",
        low=0,
        high=1024,
    )
    # The model
    model: str = option(
        "--model",
        DEFAULT_MODEL,
        group="model",
        help="'embedded' (local llama.cpp server with the packaged base model), "
        f"{SYNTHETIC_HELP}or the model name to send to --base-url",
    )
    base_url: list[str] = option(
        "--base-url",
        [],
        group="model",
        action="append",
        help="OpenAI-compatible server (repeat to spread requests over several)",
    )
    model_path: str | None = option(
        "--model-path",
        None,
        group="model",
        help="a local GGUF file for the embedded llama.cpp server, or a Hugging Face model "
        "folder or an `icm finetune` output folder (scored in process by transformers; "
        "needs the finetune extra)",
    )
    logprobs: int = option(
        "--logprobs", 20, group="model", help="top-k logprobs to request", low=1, high=_INT32_MAX
    )
    concurrency: int = option(
        "--concurrency", 4, group="model", help="requests in flight", low=1, high=1024
    )
    timeout: float = option(
        "--timeout",
        120.0,
        group="model",
        help="seconds per request",
        low=0.0,
        low_excluded=True,
        high=1e7,
    )
    keep_trailing_space: bool = option(
        "--keep-trailing-space",
        False,
        group="model",
        action=argparse.BooleanOptionalAction,
        help="send prompts ending in 'is ' unchanged (the original code, and --preset "
        "original); by default the trailing space is dropped, see docs/algorithm.md",
    )
    cache: str = option(
        "--cache",
        "default",
        group="model",
        help="response cache: a SQLite path, 'off', or 'default' ($ICM_CACHE_DIR or "
        "~/.cache/icm/responses.sqlite)",
    )
    checkpoint_every: float = option(
        "--checkpoint-every",
        2.0,
        group="run",
        metavar="SECONDS",
        help="save the search state at most this often within a batch (0: every step); "
        "finished batches and a stop are always saved, and a kill costs at most these "
        "seconds of work (docs/reliability.md)",
        low=0.0,
        high=1e6,
    )
    # Iterative fine-tuning (the paper's loop over batches; needs the 'finetune' extra)
    iterative: bool = option(
        "--iterative",
        False,
        group="finetune",
        action="store_true",
        help="the paper's loop: label batch 1 with the base model, then each next batch with "
        "the base model fine-tuned (LoRA) on the labels of all batches before it; models are "
        "scored in process (transformers) and kept in RUN_DIR/models/",
    )
    # `icm finetune`'s settings (icm.finetune_config), their defaults and ranges.
    finetune_epochs: float = option_like(
        FINETUNE_OPTIONS["epochs"], flag="--finetune-epochs", help="epochs of each round"
    )
    finetune_lr: float = option_like(
        FINETUNE_OPTIONS["learning_rate"], flag="--finetune-lr", help="learning rate of each round"
    )
    lora_r: int = option_like(FINETUNE_OPTIONS["lora_r"])
    # Output
    out: str | None = option(
        "--out", None, group="run", help="run directory (default runs/<testbed>-<time>)"
    )
    preset: str | None = option(
        "--preset",
        None,
        group="preset",
        type=str.lower,
        choices=tuple(sorted(PRESETS)),
        help="original: everything as the original code does it (its algorithm, exact MP, "
        "its consistency keys, trailing space kept, seeds at the batch start, one batch of "
        "256 claims, alpha 30); flags given explicitly override it",
    )

    def validate(self) -> None:
        def bad(name: str, why: str) -> None:
            declared = RUN_OPTIONS.get(name)
            raise ConfigError(f"{declared.flag if declared else '--' + name}: {why}")

        if self.size is not None and self.size < 1:
            bad("size", f"must be >= 1 ('all' for the whole split), got {self.size}")
        check_ranges(self)
        if not (math.isfinite(self.context_regrow) and 1 < self.context_regrow <= 1e6):
            raise ConfigError(f"context_regrow: must be > 1, got {self.context_regrow:g}")
        if self.test_fraction is not None and not (
            math.isfinite(self.test_fraction) and 0 < self.test_fraction < 1
        ):
            bad("test_fraction", f"must be between 0 and 1, got {self.test_fraction:g}")
        if self.init == "zero-shot" and not self.zero_shot:
            bad("init", "zero-shot starts from the zero-shot pass, which --no-zero-shot skips")
        if self.init == "zero-shot" and self.iterative:
            bad("init", "zero-shot is not available with --iterative")
        if self.prefetch_call_limit > 0 and self.prefetch_depth == 0:
            bad("prefetch_call_limit", "limits speculative calls: give --prefetch-depth too")
        if self.prefetch_fill and self.prefetch_call_limit == 0:
            bad(
                "prefetch_fill",
                "fills calls with the speculated calls that --prefetch-call-limit keeps back: "
                "give --prefetch-depth and --prefetch-call-limit too",
            )
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
            # The fine-tuning settings (icm.iterative.finetune_config) are checked with
            # the other ranges: lora_alpha is 2 * lora_r, the others FinetuneConfig's.
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
        p.prefetch_call_limit = self.prefetch_call_limit
        p.prefetch_fill = self.concurrency if self.prefetch_fill else 0
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
            "prefetch_call_limit",
            "prefetch_fill",
            "parallel_batches",
        }
    )


# RunConfig's options by field name (the fields that are not options: test_fraction_seed,
# context_regrow).
RUN_OPTIONS: dict[str, Option] = options_of(RunConfig)


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
