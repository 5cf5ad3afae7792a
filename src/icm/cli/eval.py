"""`icm eval`: accuracy on a testbed's held-out test split with many-shot demonstrations
from a labeled train set (see icm.evaluate for the label sources)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icm.cli.options import add_model_options, add_table, data_dir_of, model_options, table_values
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.evaluate import (
    EVAL_OPTIONS,
    LABEL_SOURCES,
    EvalConfig,
    EvalResult,
    evaluate_finetuned,
    run_eval,
    write_eval,
)
from icm.run_dir import now_iso, versions, write_json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    p = sub.add_parser(
        "eval",
        help="held-out accuracy with many-shot demonstrations",
        description="Accuracy on a test split when the model sees labeled train claims as "
        "demonstrations. --labels: an ICM run directory, or " + ", ".join(LABEL_SOURCES) + ".",
    )
    p.add_argument("--labels", required=True, help="RUN_DIR or a label source")
    add_table(p, EVAL_OPTIONS)
    add_model_options(p, synthetic=False)
    p.add_argument(
        "--finetuned",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="an `icm finetune` output folder (repeat for several): evaluate each, and their "
        "base model, in process with the same --labels source, side by side (the paper's "
        "fine-tuning comparison; needs the 'finetune' extra)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="write eval.json and predictions.jsonl here"
    )
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:

    data_dir = data_dir_of(args)
    model = RunConfig(**model_options(args))
    if model.model == "synthetic":
        raise ConfigError("--model synthetic: icm eval needs a language model")
    cfg = EvalConfig(labels=args.labels, **table_values(args, EVAL_OPTIONS), model=model)
    cfg.data_dir = str(data_dir) if data_dir else None  # $ICM_DATA_DIR when not given
    if args.finetuned:
        return compare_finetuned(cfg, args.finetuned, args.out)
    result = run_eval(cfg)
    if args.out:
        write_eval(args.out, result)
    print(json.dumps(result.summary(), indent=2))
    print(f"{result.testbed} [{result.source}]: {result_line(result)}", file=sys.stderr)
    print_warnings(result)
    return 0


def result_line(result: EvalResult) -> str:
    """Accuracy with its CI beside the numbers class imbalance cannot fool: balanced
    accuracy, the majority class's rate, and group accuracy (argmax) where there are groups."""
    d = result.details
    lo, hi = result.ci95

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    parts = [
        f"accuracy {pct(result.accuracy)} (95% CI {100 * lo:.1f}-{100 * hi:.1f})",
        f"balanced accuracy {pct(d.get('balanced_accuracy'))}",
    ]
    if d.get("majority_class") is not None:
        word = "True" if d["majority_class"] else "False"
        parts.append(f"majority class ({word}) {pct(d.get('majority_class_rate'))}")
    if d.get("group_argmax_accuracy") is not None:
        parts.append(f"group accuracy (argmax) {pct(d['group_argmax_accuracy'])}")
    if d.get("auroc") is not None:
        parts.append(f"AUROC {d['auroc']:.3f}")
    return "; ".join(parts) + f" on {result.n_test} test claims, {result.n_demos} demonstrations"


def print_warnings(result: EvalResult, name: str = "") -> None:
    for warning in result.details.get("warnings", []):
        print(f"WARNING: {name}{warning}", file=sys.stderr)


def compare_finetuned(cfg: EvalConfig, adapters: list[Path], out: Path | None) -> int:
    """The base model and each fine-tuned model side by side (icm.evaluate.evaluate_finetuned),
    each printed as it is done."""

    def print_result(name: str, result: EvalResult) -> None:
        print(f"{name}: {result_line(result)}", file=sys.stderr)
        print_warnings(result, f"{name}: ")

    results = evaluate_finetuned(cfg, adapters, on_result=print_result)
    summaries = [r.summary() for r in results]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(
            out / "eval.json",
            {"comparison": summaries, "versions": versions(), "created": now_iso()},
        )
    print(json.dumps({"comparison": summaries}, indent=2))
    return 0
