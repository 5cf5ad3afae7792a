"""`icm eval`: accuracy on a testbed's held-out test split with many-shot demonstrations
from a labeled train set (see icm.evaluate for the label sources)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icm.backends.base import LabelScorer
from icm.cli.options import DATA_DIR_HELP, add_model_options, data_dir_of, model_options
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.evaluate import (
    LABEL_SOURCES,
    EvalResult,
    auroc,
    bootstrap_labels,
    fit_demonstrations,
    group_argmax_accuracy,
    labels_from_run,
    matched_random_labels,
    order_demonstrations,
    predict,
    random_labels,
    score_predictions,
)
from icm.run_dir import now_iso, versions, write_json, write_jsonl
from icm.testbeds import LoadOptions
from icm.testbeds.base import ClaimTable
from icm.testbeds.loading import is_claims_file, load_table


@dataclass
class EvalConfig:
    labels: str = "golden"  # a label source (LABEL_SOURCES) or an ICM run directory
    testbed: str | None = None  # default: the run's testbed
    data_dir: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    train_size: int | None = None
    test_size: int | None = 100
    # Hold out this fraction of the train split's (or claims file's) consistency groups as
    # the test claims instead of reading a test split.
    test_fraction: float | None = None
    consistency: str = "default"
    seed: int = 0
    matched_run: str | None = None  # random-matched: the ICM run whose accuracy to match
    context_tokens: int = 4096
    chars_per_token: float = 3.0
    max_demos: int | None = None
    bootstrap_rounds: int = 3
    bootstrap_shots: int = 8
    model: RunConfig | None = None
    chat_model: str | None = None
    chat_base_url: str | None = None


def load_split(cfg: EvalConfig, testbed: str, split: str, size: int | None) -> ClaimTable:
    options = LoadOptions(
        data_dir=Path(cfg.data_dir) if cfg.data_dir else None,
        size=size,
        seed=cfg.seed,
        consistency=cfg.consistency,
    )
    return load_table(testbed, split, options)


@contextlib.contextmanager
def open_model(cfg: EvalConfig, label_words: tuple[str, str]) -> Iterator[LabelScorer]:
    from icm.backends import open_backend
    from icm.backends.response_cache import cache_wrapper

    model = cfg.model or RunConfig()
    with cache_wrapper(model.cache) as cached, open_backend(model, label_words) as backend:
        yield cached(backend)


def run_eval(cfg: EvalConfig, scorer: LabelScorer | None = None) -> EvalResult:
    """Evaluate one label source. `scorer` overrides the configured model (for notebooks)."""
    details: dict[str, Any] = {"seed": cfg.seed, "train_split": cfg.train_split}
    is_run = cfg.labels not in LABEL_SOURCES
    if is_run:
        run_dir = Path(cfg.labels)
        if not run_dir.is_dir():
            raise ConfigError(
                f"--labels: '{cfg.labels}' is neither a run directory nor one of "
                f"{', '.join(LABEL_SOURCES)}"
            )
        train, labels, info = labels_from_run(run_dir)
        details.update(info)
        run_cfg = RunConfig.load(run_dir / "config.json")
        testbed = cfg.testbed or run_cfg.testbed
        details["train_split"] = run_cfg.split
        if cfg.test_fraction is not None:
            _, test = load_split(cfg, testbed, run_cfg.split, None).split_groups(
                cfg.test_fraction, cfg.seed
            )
            # The run labeled claims of the whole file: those in the held-out part must not
            # be shown as demonstrations.
            held_out = {c.id for c in test.claims} | {c.prompt for c in test.claims}
            kept = [c.id for c in train.claims if c.id not in held_out and c.prompt not in held_out]
            details["run_claims_held_out"] = len(train) - len(kept)
            train = train.subset(kept)
            test = test.sample_groups(cfg.test_size, cfg.seed)
    else:
        if cfg.testbed is None:
            raise ConfigError("--testbed: needed unless --labels is a run directory")
        testbed = cfg.testbed
        if cfg.test_fraction is None:
            train = load_split(cfg, testbed, cfg.train_split, cfg.train_size)
        else:
            train, test = load_split(cfg, testbed, cfg.train_split, None).split_groups(
                cfg.test_fraction, cfg.seed
            )
            train = train.sample_groups(cfg.train_size, cfg.seed)
            test = test.sample_groups(cfg.test_size, cfg.seed)
        labels = {}
    if cfg.test_fraction is None:
        if is_claims_file(testbed):
            raise ConfigError(
                f"{testbed}: a claims file has no separate test split; give --test-fraction F "
                "(e.g. 0.3) to hold out that fraction of its consistency groups"
            )
        test = load_split(cfg, testbed, cfg.test_split, cfg.test_size)
    else:
        details["test_fraction"] = cfg.test_fraction
    train_ids = {c.id for c in train.claims}
    train_prompts = {c.prompt for c in train.claims}
    shared = sum(c.id in train_ids or c.prompt in train_prompts for c in test.claims)
    if shared:
        raise ConfigError(
            f"{testbed}: {shared} of {len(test)} test claims are also train claims (same id "
            "or prompt); the test split must be held out"
        )

    def fit(demos: list) -> list:
        return fit_demonstrations(
            demos,
            test,
            context_tokens=cfg.context_tokens,
            chars_per_token=cfg.chars_per_token,
            max_demos=cfg.max_demos,
            label_words=test.label_words,
        )

    with contextlib.ExitStack() as stack:
        if cfg.labels == "zero-shot-chat":
            from icm.backends.chat import ChatScorer

            if not cfg.chat_base_url:
                raise ConfigError("--labels zero-shot-chat: give a chat model with --chat-base-url")
            model = stack.enter_context(
                ChatScorer(cfg.chat_base_url, cfg.chat_model, label_words=test.label_words)
            )
        elif scorer is not None:
            model = scorer
        else:
            model = stack.enter_context(open_model(cfg, test.label_words))

        if cfg.labels == "golden":
            labels = {c.id: c.gold for c in train.claims}
        elif cfg.labels == "random":
            labels = random_labels(train, cfg.seed)
        elif cfg.labels == "random-matched":
            if not cfg.matched_run:
                raise ConfigError("--labels random-matched: name the ICM run with --match-run DIR")
            _, _, info = labels_from_run(Path(cfg.matched_run))
            accuracy = info["icm_agreement_with_gold"]
            if accuracy is None:
                raise ConfigError(f"--match-run: '{cfg.matched_run}' has no gold labels to match")
            labels = matched_random_labels(train, accuracy, cfg.seed)
            details["matched_accuracy"] = accuracy
        elif cfg.labels == "bootstrap":
            labels = bootstrap_labels(
                model,
                train,
                rounds=cfg.bootstrap_rounds,
                shots=cfg.bootstrap_shots,
                seed=cfg.seed,
                fit=fit,
            )
            details["bootstrap"] = {"rounds": cfg.bootstrap_rounds, "shots": cfg.bootstrap_shots}
        demos = (
            []
            if cfg.labels.startswith("zero-shot")
            else fit(order_demonstrations(train, labels, cfg.seed))
        )
        gaps = predict(model, test, demos)
        details["model"] = model.model_id
        details["backend"] = model.stats.as_dict()

    accuracy, ci, _ = score_predictions(test, gaps, seed=cfg.seed)
    # Threshold-free views of the same predictions: small base models often put every
    # claim on one side of gap 0 (argmax accuracy 50%) while still ranking them.
    details["auroc"] = auroc(gaps, test.gold_labels())
    details["group_argmax_accuracy"] = group_argmax_accuracy(test, gaps)
    details["share_predicted_true"] = sum(g > 0 for g in gaps) / len(gaps) if gaps else None
    gold_of = {c.prompt: c.gold for c in train.claims}
    demo_acc = [d.label == gold_of[d.prompt] for d in demos if gold_of.get(d.prompt) is not None]
    details["demo_label_accuracy"] = sum(demo_acc) / len(demo_acc) if demo_acc else None
    return EvalResult(
        testbed=testbed,
        source=("icm" if is_run else cfg.labels),
        n_test=len(test),
        n_demos=len(demos),
        accuracy=accuracy,
        ci95=ci,
        gaps=gaps,
        details=details,
    )


def write_eval(out: Path, result: EvalResult, test_ids: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "eval.json", {**result.summary(), "versions": versions(), "created": now_iso()}
    )
    if test_ids is not None:
        write_jsonl(
            out / "predictions.jsonl",
            (
                {"id": i, "gap": g, "prediction": g > 0}
                for i, g in zip(test_ids, result.gaps, strict=True)
            ),
        )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    p = sub.add_parser(
        "eval",
        help="held-out accuracy with many-shot demonstrations",
        description="Accuracy on a test split when the model sees labeled train claims as "
        "demonstrations. --labels: an ICM run directory, or " + ", ".join(LABEL_SOURCES) + ".",
    )
    p.add_argument("--labels", required=True, help="RUN_DIR or a label source")
    p.add_argument("--testbed", default=None, help="default: the run's testbed")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, help=DATA_DIR_HELP)
    p.add_argument(
        "--train-split", default="train", help="split the demonstrations come from (default train)"
    )
    p.add_argument("--test-split", default="test", help="split to score (default test)")
    p.add_argument("--train-size", type=int, default=None, help="train claims to draw from")
    p.add_argument("--test-size", type=int, default=100, help="test claims (default 100)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        metavar="F",
        help="instead of --test-split: hold out a seeded fraction F of the train split's "
        "consistency groups as the test claims (needed for a claims file, which has one "
        "split); with a run directory, its claims in that part are not used as demonstrations",
    )
    p.add_argument(
        "--consistency",
        default="default",
        choices=["default", "none", "paper"],
        help="consistency relations of the testbed, as for icm run (default: default)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the demonstration order, random labels and the CI (default 0)",
    )
    p.add_argument(
        "--match-run",
        dest="matched_run",
        default=None,
        help="random-matched: the ICM run whose accuracy the random labels match",
    )
    p.add_argument(
        "--context-tokens",
        type=int,
        default=4096,
        help="context budget for demonstrations and the claim (default 4096)",
    )
    p.add_argument(
        "--max-demos",
        type=int,
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
    p.add_argument("--chat-model", default=None, help="zero-shot-chat: the chat model's name")
    p.add_argument("--chat-base-url", default=None, help="zero-shot-chat: its server")
    add_model_options(p)
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
    lo, hi = result.ci95
    print(
        f"{result.testbed} [{result.source}]: accuracy {100 * result.accuracy:.1f}% "
        f"(95% CI {100 * lo:.1f}-{100 * hi:.1f}) on {result.n_test} test claims, "
        f"{result.n_demos} demonstrations",
        file=sys.stderr,
    )
    return 0


def compare_finetuned(cfg: EvalConfig, adapters: list[Path], out: Path | None) -> int:
    """The base model and each fine-tuned model, all scored in process by transformers,
    evaluated with the same label source on the same test claims."""
    from icm.backends.transformers_scorer import (
        TransformersScorer,
        load_causal_lm,
        read_finetune_record,
    )

    bases = {read_finetune_record(a)["base"] for a in adapters}
    if len(bases) != 1:
        raise ConfigError(
            f"--finetuned: the folders were fine-tuned from different base models "
            f"({', '.join(sorted(bases))}); compare models of one base"
        )
    if cfg.labels == "zero-shot-chat":
        raise ConfigError("--finetuned: use a label source other than zero-shot-chat")
    testbed = cfg.testbed
    if testbed is None and cfg.labels not in LABEL_SOURCES:
        testbed = RunConfig.load(Path(cfg.labels) / "config.json").testbed
    if testbed is None:
        raise ConfigError("--testbed: needed unless --labels is a run directory")
    words = load_split(cfg, testbed, cfg.test_split, 1).label_words
    model = cfg.model or RunConfig()
    results: list[EvalResult] = []
    for name, source in [("base", bases.pop()), *[(str(a), a) for a in adapters]]:
        scorer = TransformersScorer(
            load_causal_lm(source),
            label_words=words,
            logprobs=model.logprobs,
            keep_trailing_space=model.keep_trailing_space,
        )
        result = run_eval(cfg, scorer=scorer)
        result.details["model_source"] = name
        results.append(result)
        lo, hi = result.ci95
        print(
            f"{name}: accuracy {100 * result.accuracy:.1f}% (95% CI {100 * lo:.1f}-"
            f"{100 * hi:.1f}), AUROC {result.details['auroc']}, {result.n_test} test claims, "
            f"{result.n_demos} demonstrations",
            file=sys.stderr,
        )
        del scorer  # one model in memory at a time
    summaries = [r.summary() for r in results]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(
            out / "eval.json",
            {"comparison": summaries, "versions": versions(), "created": now_iso()},
        )
    print(json.dumps({"comparison": summaries}, indent=2))
    return 0
