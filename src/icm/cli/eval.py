"""`icm eval`: accuracy on a testbed's held-out test split with many-shot demonstrations
from a labeled train set (see icm.evaluate for the label sources)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icm.cli.options import add_model_options, add_option, data_dir_of, model_options
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.evaluate import (
    LABEL_SOURCES,
    EvalConfig,
    EvalResult,
    evaluate_finetuned,
    run_eval,
    write_eval,
)
from icm.option import positive_int
from icm.run_dir import now_iso, versions, write_json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    p = sub.add_parser(
        "eval",
        help="held-out accuracy with many-shot demonstrations",
        description="Accuracy on a test split when the model sees labeled train claims as "
        "demonstrations. --labels: an ICM run directory, or " + ", ".join(LABEL_SOURCES) + ".",
    )
    p.add_argument("--labels", required=True, help="RUN_DIR or a label source")
    add_option(p, "testbed", default=None, help="testbed name or claims file (default: the run's)")
    add_option(p, "data_dir")
    p.add_argument(
        "--train-split", default="train", help="split the demonstrations come from (default train)"
    )
    p.add_argument("--test-split", default="test", help="split to score (default test)")
    add_option(p, "train_size")
    add_option(p, "test_size")
    add_option(
        p,
        "test_fraction",
        help="instead of --test-split: hold out a seeded fraction F of the train split's "
        "consistency groups as the test claims (needed for a claims file, which has one "
        "split); with a run directory, its claims in that part are not used as demonstrations",
    )
    add_option(p, "consistency", help="consistency relations of the testbed, as for icm run")
    add_option(
        p, "seed", default=0, help="seed of the demonstration order, random labels and the CI"
    )
    p.add_argument(
        "--match-run",
        dest="matched_run",
        default=None,
        help="random-matched: the ICM run whose accuracy the random labels match",
    )
    add_option(p, "context_tokens")
    p.add_argument(
        "--max-demos",
        type=positive_int,  # -1 ran with no demonstration, silently; zero-shot is a --labels
        default=None,
        help="at most this many demonstrations (default: as many as --context-tokens holds)",
    )
    p.add_argument(
        "--bootstrap-rounds",
        type=int,
        default=3,
        help="bootstrap: rounds of relabelling from the model's own predictions (default 3)",
    )
    p.add_argument(
        "--bootstrap-shots",
        type=int,
        default=8,
        help="bootstrap: demonstrations per prediction (default 8)",
    )
    add_option(p, "chat_model")
    add_option(p, "chat_base_url")
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
    cfg = EvalConfig(
        labels=args.labels,
        testbed=args.testbed,
        data_dir=str(data_dir) if data_dir else None,
        train_split=args.train_split,
        test_split=args.test_split,
        train_size=args.train_size,
        test_size=args.test_size,
        test_fraction=args.test_fraction,
        consistency=args.consistency,
        seed=args.seed,
        matched_run=args.matched_run,
        context_tokens=args.context_tokens,
        max_demos=args.max_demos,
        bootstrap_rounds=args.bootstrap_rounds,
        bootstrap_shots=args.bootstrap_shots,
        model=model,
        chat_model=args.chat_model,
        chat_base_url=args.chat_base_url,
    )
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
