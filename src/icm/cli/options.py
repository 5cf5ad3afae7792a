"""Options and helpers shared by several `icm` commands."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from typing import Any

DATA_DIR_HELP = "folder with external dataset files (default: $ICM_DATA_DIR)"


def positive_int(text: str) -> int:
    """An int >= 1 (a negative count would slice from the end, silently)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return n


def int_or_all(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of claims or 'all', got '{text}'"
        ) from None
    if n < 1:  # 0 once meant "all": refused rather than read either way
        raise argparse.ArgumentTypeError(
            f"must be >= 1, got {text} (use --size all for the whole split)"
        )
    return n


def add_testbed_options(p: argparse.ArgumentParser, *, size_default: int | None = 16) -> None:
    p.add_argument(
        "--testbed",
        default="capitals",
        help="testbed name (see `icm testbeds`) or a path to claims .jsonl/.csv",
    )
    p.add_argument("--split", default="train", help="which split to label (default: train)")
    p.add_argument(
        "--size",
        type=int_or_all,
        default=size_default,
        help="claims to label, in whole consistency groups ('all' = the whole split; "
        f"default {size_default})",
    )
    p.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        default=None,
        help=DATA_DIR_HELP,
    )
    p.add_argument(
        "--consistency",
        default="default",
        choices=["default", "none", "paper"],
        help="default: relations true by construction; none; paper: the original code's "
        "keys (for truthfulqa they are derived from gold labels, and the run says so)",
    )


def add_model_options(p: argparse.ArgumentParser, *, synthetic: bool = True) -> None:
    """The model flags; `synthetic`: the command takes --model synthetic (only icm run)."""
    stand_in = (
        "'synthetic' (a stand-in scorer for algorithm checks, NOT a language model), "
        if synthetic
        else ""
    )
    p.add_argument(
        "--model",
        default="embedded",
        help="'embedded' (local llama.cpp server with the packaged base model), "
        f"{stand_in}or the model name to send to --base-url",
    )
    p.add_argument(
        "--base-url",
        "--base_url",
        dest="base_url",
        action="append",
        default=[],
        help="OpenAI-compatible server (repeat to spread requests over several)",
    )
    p.add_argument(
        "--model-path",
        "--model_path",
        dest="model_path",
        default=None,
        help="a local GGUF file for the embedded llama.cpp server, or a Hugging Face model "
        "folder or an `icm finetune` output folder (scored in process by transformers; "
        "needs the finetune extra)",
    )
    p.add_argument(
        "--logprobs", type=int, default=20, help="top-k logprobs to request (default 20)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument(
        "--cache",
        default="default",
        help="response cache: a SQLite path, 'off', or 'default' ($ICM_CACHE_DIR or "
        "~/.cache/icm/responses.sqlite)",
    )
    p.add_argument(
        "--keep-trailing-space",
        dest="keep_trailing_space",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send prompts ending in 'is ' unchanged (the original code, and --preset "
        "original); by default the trailing space is dropped, see docs/algorithm.md",
    )


def add_search_options(p: argparse.ArgumentParser, *, seed_help: str | None = None) -> None:
    """The search flags of `icm run` (RunConfig's search fields), for every command that
    runs the search, so that one flag means one thing everywhere."""
    from icm.config import RunConfig

    d = RunConfig()
    g = p.add_argument_group("search (the original code's flags and defaults)")
    g.add_argument(
        "--alpha",
        type=float,
        default=d.alpha,
        help="weight of MP against inconsistencies (default: the paper's balance for the "
        "batch actually used, 30 * N / 256 for N claims per batch; --alpha 30 is the "
        "original code's value, see docs/algorithm.md)",
    )
    g.add_argument(
        "--seed", type=int, default=d.seed, help=seed_help or f"random seed (default {d.seed})"
    )
    g.add_argument(
        "--batch_size",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=d.batch_size,
        help=f"claims per independent search batch (default {d.batch_size})",
    )
    g.add_argument(
        "--num_seed",
        "--num-seed",
        dest="num_seed",
        type=int,
        default=d.num_seed,
        help=f"claims given random initial labels (default {d.num_seed})",
    )
    g.add_argument(
        "--K", type=int, default=d.K, help=f"search iterations per batch (default {d.K})"
    )
    g.add_argument(
        "--consistency_fix_K",
        "--consistency-fix-k",
        dest="consistency_fix_K",
        type=int,
        default=d.consistency_fix_K,
        help=f"ConsistencyFix rounds (default {d.consistency_fix_K})",
    )
    g.add_argument(
        "--decay", type=float, default=d.decay, help=f"exp schedule decay (default {d.decay})"
    )
    g.add_argument(
        "--initial_T",
        "--initial-t",
        dest="initial_T",
        type=float,
        default=d.initial_T,
        help=f"initial temperature (default {d.initial_T:g})",
    )
    g.add_argument(
        "--final_T",
        "--final-t",
        dest="final_T",
        type=float,
        default=d.final_T,
        help=f"final temperature (default {d.final_T:g})",
    )
    g.add_argument(
        "--scheduler",
        default=d.scheduler,
        help="log: T = initial_T / (1 + beta ln(1 + n)) with beta 0.99 under --algorithm "
        "paper (the default), 2 under --algorithm code as in the original (--log-beta sets "
        "it; --decay is not used); exp: T = initial_T * decay^n. Both floored at final_T "
        "(default log)",
    )
    h = p.add_argument_group("icm's search options")
    h.add_argument(
        "--algorithm",
        default=d.algorithm,
        help="paper: Algorithms 1-2 as written; code: the original code's behaviour "
        "where it differs (docs/algorithm.md)",
    )
    h.add_argument(
        "--log-beta",
        "--log_beta",
        dest="log_beta",
        type=float,
        default=None,
        help="beta of the log schedule (default 0.99 paper, 2 code)",
    )
    h.add_argument(
        "--mp",
        default=d.mp,
        help="exact: every labeled claim in context (the original); sparse: a fixed "
        f"random context of --context-k claims (default {d.mp})",
    )
    h.add_argument(
        "--context-k",
        "--context_k",
        dest="context_k",
        type=int,
        default=d.context_k,
        help=f"demonstrations per claim with --mp sparse (default {d.context_k})",
    )
    h.add_argument(
        "--mp-objective",
        "--mp_objective",
        dest="mp_objective",
        default=d.mp_objective,
        help="mean-gap (original code) | sum-logprob (paper text)",
    )
    h.add_argument(
        "--init",
        default=d.init,
        choices=["random", "zero-shot"],
        help="random: num_seed random labels (the paper); zero-shot: start from every "
        "claim's zero-shot label (beyond the paper, docs/results/zero-shot-init.md) "
        f"(default {d.init})",
    )
    h.add_argument(
        "--zero-shot",
        dest="zero_shot",
        action=argparse.BooleanOptionalAction,
        default=d.zero_shot,
        help="score every claim alone first and compare ICM with those zero-shot labels in "
        "the summary (one request per claim, through the response cache; default on)",
    )
    h.add_argument(
        "--prefetch-depth",
        "--prefetch_depth",
        dest="prefetch_depth",
        type=int,
        default=d.prefetch_depth,
        help="speculative prefetch: while the search waits for the server, also send the "
        "requests of up to this many later rounds (same labels and trace; fewer rounds, "
        "some wasted requests; 4 suits a remote vLLM server; default 0: none)",
    )
    h.add_argument(
        "--parallel-batches",
        "--parallel_batches",
        dest="parallel_batches",
        type=int,
        default=d.parallel_batches,
        help="batches searched at once, their requests in flight together (same labels "
        "and trace as one after another; 0, the default: 4 against a model server, 1 for "
        "--model synthetic, an in-process model or --iterative)",
    )


@functools.cache
def search_fields() -> tuple[str, ...]:
    """The RunConfig fields add_search_options declares, read off the flags themselves so
    that a flag added there is passed on everywhere."""
    p = argparse.ArgumentParser(add_help=False)
    add_search_options(p)
    return tuple(a.dest for a in p._actions)


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields set by add_search_options."""
    return {name: getattr(args, name) for name in search_fields()}


def data_dir_of(args: argparse.Namespace) -> Path | None:
    value = getattr(args, "data_dir", None) or os.environ.get("ICM_DATA_DIR")
    return Path(value) if value else None


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields set by add_model_options."""
    return {
        "model": args.model,
        "base_url": list(args.base_url),
        "model_path": args.model_path,
        "logprobs": args.logprobs,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "keep_trailing_space": args.keep_trailing_space,
        "cache": args.cache,
    }
