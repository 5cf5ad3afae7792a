"""`icm replicate`: the paper's comparison as one command.

For each testbed and seed: run ICM on a train sample, then evaluate on the held-out test
split (or, with --test-fraction, on held-out groups of the train split or claims file,
which ICM never sees) with demonstrations labeled by ICM, by gold labels, by random labels
(plain, and matched to ICM's accuracy), zero-shot, the bootstrap baseline, and a chat
model when one is given. For truthfulqa it also runs ICM with --consistency paper
(gold-derived keys), so that the report can state the gap to the leak-free default. Every
result is one Cell, appended to OUT/cells.jsonl as it is done (a rerun keeps those);
icm.report.replicate_report turns the cells into report.md and figure.png, ranked by a
metric class imbalance cannot fool.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from icm.config import RUN_OPTIONS, RunConfig
from icm.evaluate import EVAL_OPTIONS, EvalConfig, EvalResult, run_eval
from icm.option import check_ranges, option, option_like, options_of

if TYPE_CHECKING:
    from icm.backends.registry import OpenModel

METHODS = ("zero-shot", "zero-shot-chat", "random", "random-matched", "bootstrap", "golden", "icm")


@dataclass
class ReplicateConfig:
    """The settings of a replication. Its options are `icm eval`'s (EVAL_OPTIONS) and `icm
    run`'s (RUN_OPTIONS) declarations where they mean the same; `run` holds the search and
    model options of every ICM run and evaluation."""

    testbeds: list[str]
    seeds: int = option(
        "--seeds", 3, group="replicate", low=1, help="ICM runs and baselines per testbed"
    )
    # The claims ICM labels, and the pool every baseline draws its demonstrations from.
    train_size: int = option_like(
        EVAL_OPTIONS["train_size"], default=32, help="train claims ICM labels"
    )
    test_size: int | None = option_like(EVAL_OPTIONS["test_size"])
    run: RunConfig = field(default_factory=RunConfig)  # search and model options
    data_dir: str | None = option_like(RUN_OPTIONS["data_dir"])
    context_tokens: int = option_like(EVAL_OPTIONS["context_tokens"])
    chat_model: str | None = option_like(EVAL_OPTIONS["chat_model"])
    chat_base_url: str | None = option_like(EVAL_OPTIONS["chat_base_url"])
    out: Path = option(
        "--out",
        Path("replicate"),
        group="replicate",
        type=Path,
        help="folder for report.md, figure.png and the runs",
    )
    # Hold out this fraction of each testbed's train groups as the test claims (needed for
    # a claims file, which has no test split): ICM labels only the rest.
    test_fraction: float | None = option_like(
        RUN_OPTIONS["test_fraction"],
        help="hold out this fraction of each testbed's train groups as the test claims "
        "instead of its test split; ICM never sees them (needed for a claims file, e.g. "
        "--testbeds my_claims.jsonl --test-fraction 0.3)",
    )


REPLICATE_OPTIONS = options_of(ReplicateConfig)


@dataclass
class Cell:
    testbed: str
    method: str
    seed: int
    accuracy: float
    ci95: tuple[float, float]
    n_test: int
    n_demos: int
    details: dict[str, Any]


def run_replicate(cfg: ReplicateConfig, log: Any = print) -> list[Cell]:
    from icm.errors import ConfigError
    from icm.testbeds.loading import is_claims_file

    check_ranges(cfg)
    files = [t for t in cfg.testbeds if is_claims_file(t)]
    if files and cfg.test_fraction is None:
        raise ConfigError(
            f"--testbeds {files[0]}: a claims file has no test split; give --test-fraction F "
            "(e.g. 0.3) to hold out that fraction of its consistency groups"
        )

    cells: list[Cell] = []
    cfg.out.mkdir(parents=True, exist_ok=True)
    cells_path = cfg.out / "cells.jsonl"
    done = set()
    if cells_path.exists():  # resume: keep what is done
        for line in cells_path.read_text().splitlines():
            row = json.loads(line)
            cells.append(Cell(**{**row, "ci95": tuple(row["ci95"])}))
            done.add((row["testbed"], row["method"], row["seed"]))

    def record(cell: Cell) -> None:
        cells.append(cell)
        with cells_path.open("a") as f:
            f.write(json.dumps(cell.__dict__) + "\n")

    from icm.backends.registry import open_model

    # One model for every run and evaluation: the embedded server starts once.
    with open_model(cfg.run) as model:
        for testbed in cfg.testbeds:
            for seed in range(cfg.seeds):
                replicate_seed(cfg, testbed, seed, model, done, record, log)
    return cells


def replicate_seed(
    cfg: ReplicateConfig,
    testbed: str,
    seed: int,
    model: OpenModel,
    done: set[tuple[str, str, int]],
    record: Callable[[Cell], None],
    log: Any,
) -> None:
    """ICM on one testbed and seed (and, for truthfulqa, with --consistency paper), each
    evaluated, then every baseline: the cells not `done` yet, each passed to `record`."""
    from icm.run import resume_run, start_run

    variants = [("icm", "default")]
    if testbed == "truthfulqa":
        variants.append(("icm-paper-consistency", "paper"))
    run_dirs: dict[str, Path] = {}
    for method, consistency in variants:
        run_dir = cfg.out / "runs" / f"{run_name(testbed)}-{method}-seed{seed}"
        run_dirs[method] = run_dir
        if (testbed, method, seed) in done:
            continue
        if not (run_dir / "labels.jsonl").exists():
            run_cfg = replace(
                cfg.run,
                testbed=testbed,
                split="train",
                size=cfg.train_size,
                seed=cfg.run.seed + seed,
                consistency=consistency,
                data_dir=cfg.data_dir,
                out=str(run_dir),
                test_fraction=cfg.test_fraction,
                test_fraction_seed=seed,
            )
            started = time.monotonic()
            if (run_dir / "config.json").exists():
                resume_run(run_dir, {}, progress=False, model=model)
            else:
                start_run(run_cfg, progress=False, model=model)
            log(f"{testbed} seed {seed}: ICM ({consistency}) in {time.monotonic() - started:.0f}s")
        record(evaluate_cell(cfg, testbed, method, seed, model, labels=str(run_dir)))
    for method in METHODS:
        if method == "icm" or (testbed, method, seed) in done:
            continue
        if method == "zero-shot-chat" and not cfg.chat_base_url:
            continue
        cell = evaluate_cell(
            cfg, testbed, method, seed, model, labels=method, matched_run=str(run_dirs["icm"])
        )
        record(cell)
        log(f"{testbed} seed {seed}: {method} {100 * cell.accuracy:.1f}%")


def run_name(testbed: str) -> str:
    """A folder name for a testbed's runs: a claims file's stem (its path, absolute or with
    folders, would put the runs outside OUT/runs)."""
    from icm.testbeds.loading import is_claims_file

    return Path(testbed).stem if is_claims_file(testbed) else testbed


def evaluate_cell(
    cfg: ReplicateConfig,
    testbed: str,
    method: str,
    seed: int,
    model: OpenModel,
    *,
    labels: str,
    matched_run: str | None = None,
) -> Cell:
    ecfg = EvalConfig(
        labels=labels,
        testbed=testbed,
        data_dir=cfg.data_dir,
        train_size=cfg.train_size,
        test_size=cfg.test_size,
        seed=seed,
        matched_run=matched_run,
        context_tokens=cfg.context_tokens,
        model=cfg.run,
        chat_model=cfg.chat_model,
        chat_base_url=cfg.chat_base_url,
        test_fraction=cfg.test_fraction,
    )
    result: EvalResult = run_eval(ecfg, model=model)
    return Cell(
        testbed,
        method,
        seed,
        result.accuracy,
        result.ci95,
        result.n_test,
        result.n_demos,
        result.details,
    )


def cell_value(cell: Cell, metric: str) -> float | None:
    """A cell's `metric` (accuracy, or a field of its details such as balanced_accuracy)."""
    if metric == "accuracy":
        return cell.accuracy
    value = cell.details.get(metric)
    return float(value) if isinstance(value, int | float) else None


def testbed_metric(cells: list[Cell], testbed: str) -> str:
    """The metric a testbed's methods are ranked by: the imbalance-robust one its cells
    name (icm.evaluate.robust_metric) when every cell has it, else balanced accuracy, else
    (cells written before either existed) accuracy."""
    mine = [c for c in cells if c.testbed == testbed]
    for metric in ("group_argmax_accuracy", "balanced_accuracy"):
        named = [c.details.get("robust_metric") == metric for c in mine]
        has = [cell_value(c, metric) is not None for c in mine]
        if mine and all(has) and (metric == "balanced_accuracy" or all(named)):
            return metric
    return "accuracy"


def summarize(
    cells: list[Cell], metric: str | dict[str, str] = "accuracy"
) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(testbed, method) -> (mean %, std %, seeds) of `metric` (one for all testbeds, or
    testbed -> metric)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for c in cells:
        name = metric if isinstance(metric, str) else metric.get(c.testbed, "accuracy")
        value = cell_value(c, name)
        if value is not None:
            groups.setdefault((c.testbed, c.method), []).append(100 * value)
    return {
        k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
        for k, v in groups.items()
    }
