"""Held-out evaluation: how well the base model predicts a test split when it is shown
labeled train claims as many-shot demonstrations (the paper's protocol).

Label sources for the demonstrations:
    golden           the train split's gold labels
    RUN_DIR          an ICM run's labels (claims it left unlabeled are not shown)
    random           uniformly random labels
    random-matched   gold labels with a random subset flipped so that their accuracy
                     equals an ICM run's agreement with gold (the paper's ablation)
    zero-shot        no demonstrations
    zero-shot-chat   a post-trained chat model, zero-shot, through /v1/chat/completions
    bootstrap        few-shot with random labels, then relabel the train claims with the
                     model's own predictions, and repeat

Demonstration order (documented, seeded): whole consistency groups in a random order,
claims of a group together in train order; as many as fit the context budget. Every test
claim sees the same demonstrations, so a server with prefix caching computes them once.
Accuracy comes with a 95% percentile bootstrap confidence interval over test claims.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icm.backends.base import LabelScorer
from icm.backends.registry import OpenModel
from icm.config import RUN_OPTIONS, RunConfig
from icm.errors import ConfigError
from icm.option import check_ranges, int_or_all, option, option_like, options_of, positive_int
from icm.run_dir import now_iso, versions, write_json, write_jsonl
from icm.search import gold_agreement
from icm.testbeds import LoadOptions
from icm.testbeds.base import ClaimRecord, ClaimTable
from icm.testbeds.loading import check_claims_file_split, is_claims_file, load_table

DEMO_SEPARATOR = "\n\n"

# What `icm eval` accepts besides a run directory.
LABEL_SOURCES = ("golden", "random", "random-matched", "zero-shot", "zero-shot-chat", "bootstrap")


@dataclass(frozen=True)
class Demonstration:
    prompt: str
    label: bool


def render_demonstrations(demos: Sequence[Demonstration], label_words: tuple[str, str]) -> str:
    """The same format ICM scores with: prompt, label word, blank line."""
    return "".join(
        d.prompt + (label_words[0] if d.label else label_words[1]) + DEMO_SEPARATOR for d in demos
    )


def order_demonstrations(
    table: ClaimTable, labels: dict[str, bool | None], seed: int
) -> list[Demonstration]:
    groups = list(table.groups().values())
    random.Random(seed).shuffle(groups)
    out = []
    for group in groups:
        for c in group:
            label = labels.get(c.id)
            if label is not None:
                out.append(Demonstration(c.prompt, label))
    return out


def fit_demonstrations(
    demos: Sequence[Demonstration],
    test: ClaimTable,
    *,
    context_tokens: int,
    chars_per_token: float,
    max_demos: int | None,
    label_words: tuple[str, str],
) -> list[Demonstration]:
    """The longest prefix of `demos` that fits the context with the longest test claim."""
    budget = int(context_tokens * chars_per_token) - max(
        (len(c.prompt) for c in test.claims), default=0
    )
    out: list[Demonstration] = []
    used = 0
    for d in demos:
        if max_demos is not None and len(out) >= max_demos:
            break
        size = len(render_demonstrations([d], label_words))
        if used + size > budget:
            break
        out.append(d)
        used += size
    return out


def predict(scorer: LabelScorer, test: ClaimTable, demos: Sequence[Demonstration]) -> list[float]:
    """The model's gap log P(true) - log P(false) for every test claim."""
    prefix = render_demonstrations(demos, test.label_words)
    scores = scorer.score_prompts([prefix + c.prompt for c in test.claims])
    return [t - f for t, f in scores]


def bootstrap_ci(
    correct: Sequence[bool], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `correct`."""
    n = len(correct)
    if n == 0:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    values = [float(x) for x in correct]
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[math.floor((1 - level) / 2 * resamples)]
    hi = means[min(resamples - 1, math.ceil((1 + level) / 2 * resamples) - 1)]
    return (lo, hi)


@dataclass
class EvalResult:
    testbed: str
    source: str
    n_test: int
    n_demos: int
    accuracy: float
    ci95: tuple[float, float]
    gaps: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    test_claims: list[ClaimRecord] = field(default_factory=list)  # in the order of gaps

    def summary(self) -> dict[str, Any]:
        return {
            "testbed": self.testbed,
            "source": self.source,
            "n_test": self.n_test,
            "n_demos": self.n_demos,
            "accuracy": self.accuracy,
            "ci95": list(self.ci95),
            **self.details,
        }


def score_predictions(
    test: ClaimTable, gaps: Sequence[float], *, seed: int
) -> tuple[float, tuple[float, float], list[bool]]:
    gold = test.gold_labels()
    pairs = [(g > 0, y) for g, y in zip(gaps, gold, strict=True) if y is not None]
    if not pairs:
        raise ConfigError(f"{test.testbed}/{test.split}: no gold labels to evaluate against")
    correct = [p == y for p, y in pairs]
    return sum(correct) / len(correct), bootstrap_ci(correct, seed=seed), correct


def auroc(gaps: Sequence[float], gold: Sequence[bool | None]) -> float | None:
    """Area under the ROC curve of the gap for gold True vs False (ties count half): how
    well the model ranks true claims above false ones, whatever its bias toward one word."""
    pos = [g for g, y in zip(gaps, gold, strict=True) if y is True]
    neg = [g for g, y in zip(gaps, gold, strict=True) if y is False]
    if not pos or not neg:
        return None
    ranked = sorted((g, i) for i, g in enumerate(pos + neg))
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(ranks[: len(pos)])
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def balanced_accuracy(gaps: Sequence[float], gold: Sequence[bool | None]) -> float | None:
    """The mean of the accuracies on gold-True and on gold-False claims (prediction: gap >
    0): 50% for any constant prediction, whatever the class balance."""
    recalls = []
    for label in (True, False):
        hits = [g > 0 for g, y in zip(gaps, gold, strict=True) if y is label]
        if hits:
            recalls.append(sum(h == label for h in hits) / len(hits))
    return sum(recalls) / len(recalls) if recalls else None


def majority_class(gold: Sequence[bool | None]) -> tuple[bool, float] | None:
    """The more frequent gold label and its share: the accuracy of predicting it always."""
    known = [y for y in gold if y is not None]
    if not known:
        return None
    n_true = sum(known)
    label = 2 * n_true >= len(known)
    return label, (n_true if label else len(known) - n_true) / len(known)


def robust_metric(details: Mapping[str, Any]) -> tuple[str, float | None]:
    """The metric that class imbalance cannot fool, by which results are ranked: group
    accuracy (argmax) where the test claims come in groups with exactly one true claim
    covering at least half of them, else balanced accuracy."""
    if (
        details.get("group_argmax_accuracy") is not None
        and details.get("group_argmax_coverage", 0) >= 0.5
    ):
        return "group_argmax_accuracy", details["group_argmax_accuracy"]
    return "balanced_accuracy", details.get("balanced_accuracy")


METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "group_argmax_accuracy": "group accuracy (argmax)",
}


def one_true_groups(test: ClaimTable) -> list[list[ClaimRecord]]:
    """The groups of two or more claims, all with gold labels, exactly one of them true (a
    question and its answers, a pair and its twin): those group accuracy (argmax) counts."""
    return [
        g
        for g in test.groups().values()
        if len(g) >= 2
        and all(c.gold is not None for c in g)
        and sum(c.gold is True for c in g) == 1
    ]


def group_argmax_coverage(test: ClaimTable) -> float:
    """The share of test claims in groups that group_argmax_accuracy counts."""
    counted = sum(len(g) for g in one_true_groups(test))
    return counted / len(test) if len(test) else 0.0


def group_argmax_accuracy(test: ClaimTable, gaps: Sequence[float]) -> float | None:
    """How often the claim with the highest gap is the true one, over one_true_groups."""
    gap = {c.id: g for c, g in zip(test.claims, gaps, strict=True)}
    groups = one_true_groups(test)
    right = sum(max(g, key=lambda c: gap[c.id]).gold is True for g in groups)
    return right / len(groups) if groups else None


# -- label sources ---------------------------------------------------------------------


def labels_from_run(run_dir: Path) -> tuple[ClaimTable, dict[str, bool | None], dict[str, Any]]:
    """The train claims and labels of an ICM run directory (prompts from labels.jsonl)."""
    from icm.run_dir import read_finished_run

    if not (run_dir / "labels.jsonl").exists():
        raise ConfigError(f"--labels: '{run_dir}' has no labels.jsonl (is it a finished icm run?)")
    run = read_finished_run(run_dir)
    claims = [
        ClaimRecord(id=r["id"], prompt=r["prompt"], group=r.get("group") or "", gold=r.get("gold"))
        for r in run.all_rows
    ]
    table = ClaimTable(run.testbed or "run", run.split or "train", claims, [], run.label_words)
    labels = run.labels
    agreement = gold_agreement([r.get("label") for r in run.all_rows], [c.gold for c in claims])
    return (
        table,
        labels,
        {
            "icm_run": str(run_dir),
            "icm_agreement_with_gold": agreement,
            "icm_run_verdict": run.verdict,
            "icm_run_warning": run.quality_warning(),
        },
    )


def random_labels(table: ClaimTable, seed: int) -> dict[str, bool | None]:
    rng = random.Random(seed)
    return {c.id: rng.random() < 0.5 for c in table.claims}


def matched_random_labels(table: ClaimTable, accuracy: float, seed: int) -> dict[str, bool | None]:
    """Gold labels with round((1 - accuracy) * n) of them flipped, chosen at random."""
    gold = [c for c in table.claims if c.gold is not None]
    n_flip = round((1 - accuracy) * len(gold))
    flip = {c.id for c in random.Random(seed).sample(gold, n_flip)}
    return {c.id: (not c.gold) if c.id in flip else c.gold for c in gold}


def bootstrap_labels(
    scorer: LabelScorer,
    train: ClaimTable,
    *,
    rounds: int,
    shots: int,
    seed: int,
    fit: Callable[[list[Demonstration]], list[Demonstration]],
) -> dict[str, bool | None]:
    """Start from random labels; each round, predict every train claim from `shots`
    demonstrations of the current labels and take the predictions as the new labels."""
    labels = random_labels(train, seed)
    # Two halves, each relabeled from demonstrations of the other, so no claim is ever
    # shown its own current label.
    groups = list(train.groups())
    random.Random(seed).shuffle(groups)
    half_of = {g: i % 2 for i, g in enumerate(groups)}
    halves = [
        train.subset(c.id for c in train.claims if half_of[c.group or c.id] == h) for h in (0, 1)
    ]
    for r in range(rounds):
        new: dict[str, bool | None] = {}
        for h in (0, 1):
            source, target = halves[1 - h], halves[h]
            demos = fit(order_demonstrations(source, labels, seed + r + 1))[:shots]
            gaps = predict(scorer, target, demos)
            new.update({c.id: g > 0 for c, g in zip(target.claims, gaps, strict=True)})
        labels = new
    return labels


@dataclass
class EvalConfig:
    """The settings of one evaluation. A field that is an `icm eval` option declares it
    here (icm.option); `icm replicate` takes several of them (icm.replicate)."""

    labels: str = "golden"  # a label source (LABEL_SOURCES) or an ICM run directory
    testbed: str | None = option_like(
        RUN_OPTIONS["testbed"],
        default=None,
        help="testbed name or claims file (default: the run's)",
    )
    data_dir: str | None = option_like(RUN_OPTIONS["data_dir"])
    train_split: str = option(
        "--train-split", "train", group="eval", help="split the demonstrations come from"
    )
    test_split: str = option("--test-split", "test", group="eval", help="split to score")
    train_size: int | None = option(
        "--train-size",
        None,
        group="eval",
        type=positive_int,
        low=1,
        help="train claims to draw demonstrations from (default: the whole split)",
    )
    test_size: int | None = option(
        "--test-size",
        100,
        group="eval",
        type=int_or_all,
        low=1,
        help="test claims, in whole groups ('all': the whole split)",
    )
    # Hold out this fraction of the train split's (or claims file's) consistency groups as
    # the test claims instead of reading a test split.
    test_fraction: float | None = option_like(
        RUN_OPTIONS["test_fraction"],
        help="instead of --test-split: hold out a seeded fraction F of the train split's "
        "consistency groups as the test claims (needed for a claims file, which has one "
        "split); with a run directory, its claims in that part are not used as demonstrations",
    )
    consistency: str = option_like(
        RUN_OPTIONS["consistency"], help="consistency relations of the testbed, as for icm run"
    )
    seed: int = option_like(
        RUN_OPTIONS["seed"],
        default=0,
        help="seed of the demonstration order, random labels and the CI",
    )
    matched_run: str | None = option(
        "--match-run",
        None,
        group="eval",
        help="random-matched: the ICM run whose accuracy the random labels match",
    )
    context_tokens: int = option(
        "--context-tokens",
        4096,
        group="eval",
        type=positive_int,  # 0 or less held no demonstration, silently
        low=1,
        help="context budget for demonstrations and the claim",
    )
    chars_per_token: float = 3.0
    max_demos: int | None = option(
        "--max-demos",
        None,
        group="eval",
        type=positive_int,  # -1 ran with no demonstration, silently; zero-shot is a --labels
        low=1,
        help="at most this many demonstrations (default: as many as --context-tokens holds)",
    )
    bootstrap_rounds: int = option(
        "--bootstrap-rounds",
        3,
        group="eval",
        low=0,
        help="bootstrap: rounds of relabelling from the model's own predictions",
    )
    bootstrap_shots: int = option(
        "--bootstrap-shots", 8, group="eval", low=1, help="bootstrap: demonstrations per prediction"
    )
    model: RunConfig | None = None
    chat_model: str | None = option(
        "--chat-model", None, group="eval", help="zero-shot-chat labels: the chat model's name"
    )
    chat_base_url: str | None = option(
        "--chat-base-url", None, group="eval", help="zero-shot-chat labels: its server"
    )

    def validate(self) -> None:
        """Ranges and choices, for settings given by the API (argparse checks the flags')."""
        check_ranges(self)


EVAL_OPTIONS = options_of(EvalConfig)


def load_split(cfg: EvalConfig, testbed: str, split: str, size: int | None) -> ClaimTable:
    options = LoadOptions(
        data_dir=Path(cfg.data_dir) if cfg.data_dir else None,
        size=size,
        seed=cfg.seed,
        consistency=cfg.consistency,
    )
    return load_table(testbed, split, options)


@dataclass
class EvalClaims:
    """The claims an evaluation shows (train) and scores (test), and the labels of a run."""

    testbed: str
    train: ClaimTable
    test: ClaimTable | None  # None until read (with_test_claims) unless --test-fraction
    labels: dict[str, bool | None]  # an ICM run's; other sources label the train claims later


def run_eval(
    cfg: EvalConfig, scorer: LabelScorer | None = None, model: OpenModel | None = None
) -> EvalResult:
    """Evaluate one label source. `scorer` overrides the configured model (for notebooks);
    `model` is one the caller opened (icm replicate), else it is opened here."""
    cfg.validate()
    details: dict[str, Any] = {"seed": cfg.seed, "train_split": cfg.train_split}
    is_run = cfg.labels not in LABEL_SOURCES
    claims = load_run_claims(cfg, details) if is_run else load_source_claims(cfg)
    test = load_test_claims(cfg, claims, details)
    check_held_out(claims.testbed, claims.train, test)

    def fit(demos: list[Demonstration]) -> list[Demonstration]:
        return fit_demonstrations(
            demos,
            test,
            context_tokens=cfg.context_tokens,
            chars_per_token=cfg.chars_per_token,
            max_demos=cfg.max_demos,
            label_words=test.label_words,
        )

    with contextlib.ExitStack() as stack:
        label_scorer = scorer_for_eval(stack, cfg, test.label_words, scorer, model)
        labels = source_labels(cfg, label_scorer, claims, fit, details)
        demos = (
            []
            if cfg.labels.startswith("zero-shot")
            else fit(order_demonstrations(claims.train, labels, cfg.seed))
        )
        gaps = predict(label_scorer, test, demos)
        details["model"] = label_scorer.model_id
        details["backend"] = label_scorer.stats.as_dict()

    accuracy, ci, _ = score_predictions(test, gaps, seed=cfg.seed)
    details.update(prediction_metrics(test, gaps))
    details["demo_label_accuracy"] = demo_label_accuracy(claims.train, demos)
    details["warnings"] = eval_warnings(details, demos, gaps, test, accuracy)
    return EvalResult(
        testbed=claims.testbed,
        source=("icm" if is_run else cfg.labels),
        n_test=len(test),
        n_demos=len(demos),
        accuracy=accuracy,
        ci95=ci,
        gaps=gaps,
        details=details,
        test_claims=list(test.claims),
    )


def load_run_claims(cfg: EvalConfig, details: dict[str, Any]) -> EvalClaims:
    """The train claims and labels of the ICM run --labels names; with --test-fraction
    also its held-out test claims (the run's claims among them are not shown)."""
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
    if cfg.test_fraction is None:
        return EvalClaims(testbed, train, None, labels)
    _, test = load_split(cfg, testbed, run_cfg.split, None).split_groups(
        cfg.test_fraction, cfg.seed
    )
    # The run labeled claims of the whole file: those in the held-out part must not be
    # shown as demonstrations.
    held_out = {c.id for c in test.claims} | {c.prompt for c in test.claims}
    kept = [c.id for c in train.claims if c.id not in held_out and c.prompt not in held_out]
    details["run_claims_held_out"] = len(train) - len(kept)
    test = test.sample_groups(cfg.test_size, cfg.seed)
    return EvalClaims(testbed, train.subset(kept), test, labels)


def load_source_claims(cfg: EvalConfig) -> EvalClaims:
    """The train claims of --testbed (--train-split, or with --test-fraction the groups it
    does not hold out, which are then the test claims)."""
    if cfg.testbed is None:
        raise ConfigError("--testbed: needed unless --labels is a run directory")
    testbed = cfg.testbed
    check_claims_file_split(testbed, cfg.train_split, "--train-split")
    if cfg.test_fraction is None:
        train = load_split(cfg, testbed, cfg.train_split, cfg.train_size)
        return EvalClaims(testbed, train, None, {})
    train, test = load_split(cfg, testbed, cfg.train_split, None).split_groups(
        cfg.test_fraction, cfg.seed
    )
    train = train.sample_groups(cfg.train_size, cfg.seed)
    return EvalClaims(testbed, train, test.sample_groups(cfg.test_size, cfg.seed), {})


def load_test_claims(cfg: EvalConfig, claims: EvalClaims, details: dict[str, Any]) -> ClaimTable:
    """The test claims: those --test-fraction held out, else the test split, read here."""
    if claims.test is not None:
        assert cfg.test_fraction is not None
        if cfg.test_split != EvalConfig.test_split:  # it would be ignored
            raise ConfigError(
                f"--test-split {cfg.test_split}: with --test-fraction the test claims are "
                "held-out groups of the train split; leave out one of the two"
            )
        details["test_fraction"] = cfg.test_fraction
        return claims.test
    if is_claims_file(claims.testbed):
        raise ConfigError(
            f"{claims.testbed}: a claims file has no separate test split; give "
            "--test-fraction F (e.g. 0.3) to hold out that fraction of its consistency groups"
        )
    return load_split(cfg, claims.testbed, cfg.test_split, cfg.test_size)


def check_held_out(testbed: str, train: ClaimTable, test: ClaimTable) -> None:
    """No test claim may be a train claim (the same id or prompt)."""
    train_ids = {c.id for c in train.claims}
    train_prompts = {c.prompt for c in train.claims}
    shared = sum(c.id in train_ids or c.prompt in train_prompts for c in test.claims)
    if shared:
        raise ConfigError(
            f"{testbed}: {shared} of {len(test)} test claims are also train "
            "claims (same id or prompt); the test split must be held out"
        )


def scorer_for_eval(
    stack: contextlib.ExitStack,
    cfg: EvalConfig,
    label_words: tuple[str, str],
    scorer: LabelScorer | None,
    model: OpenModel | None,
) -> LabelScorer:
    """The scorer of the evaluation, closed with `stack`: the chat model of zero-shot-chat,
    else `scorer` when given, else a scorer on `model` (opened here when not given),
    behind the response cache."""
    options = cfg.model or RunConfig()
    if cfg.labels == "zero-shot-chat":
        from icm.backends.chat import ChatScorer

        if not cfg.chat_base_url:
            raise ConfigError("--labels zero-shot-chat: give a chat model with --chat-base-url")
        # --logprobs, --timeout and --concurrency apply to the chat baseline too.
        return stack.enter_context(
            ChatScorer(
                cfg.chat_base_url,
                cfg.chat_model,
                label_words=label_words,
                logprobs=options.logprobs,
                timeout=options.timeout,
                concurrency=options.concurrency,
            )
        )
    if scorer is not None:
        return scorer
    from icm.backends.registry import open_model
    from icm.backends.response_cache import cache_wrapper

    if model is None:
        model = stack.enter_context(open_model(options))
    cached = stack.enter_context(cache_wrapper(options.cache))
    return cached(stack.enter_context(model.scorer(label_words)))


def source_labels(
    cfg: EvalConfig,
    scorer: LabelScorer,
    claims: EvalClaims,
    fit: Callable[[list[Demonstration]], list[Demonstration]],
    details: dict[str, Any],
) -> dict[str, bool | None]:
    """The demonstrations' labels of the train claims, from the label source (a run's are
    read with its claims)."""
    train = claims.train
    if cfg.labels == "golden":
        return {c.id: c.gold for c in train.claims}
    if cfg.labels == "random":
        return random_labels(train, cfg.seed)
    if cfg.labels == "random-matched":
        if not cfg.matched_run:
            raise ConfigError("--labels random-matched: name the ICM run with --match-run DIR")
        _, _, info = labels_from_run(Path(cfg.matched_run))
        accuracy = info["icm_agreement_with_gold"]
        if accuracy is None:
            raise ConfigError(f"--match-run: '{cfg.matched_run}' has no gold labels to match")
        details["matched_accuracy"] = accuracy
        return matched_random_labels(train, accuracy, cfg.seed)
    if cfg.labels == "bootstrap":
        details["bootstrap"] = {"rounds": cfg.bootstrap_rounds, "shots": cfg.bootstrap_shots}
        return bootstrap_labels(
            scorer,
            train,
            rounds=cfg.bootstrap_rounds,
            shots=cfg.bootstrap_shots,
            seed=cfg.seed,
            fit=fit,
        )
    return claims.labels


def prediction_metrics(test: ClaimTable, gaps: Sequence[float]) -> dict[str, Any]:
    """The views of the predictions beside accuracy, and the metric results rank by."""
    gold = test.gold_labels()
    majority = majority_class(gold)
    out: dict[str, Any] = {
        # Threshold-free views of the same predictions: small base models often put every
        # claim on one side of gap 0 (argmax accuracy 50%) while still ranking them.
        "auroc": auroc(gaps, gold),
        "group_argmax_accuracy": group_argmax_accuracy(test, gaps),
        "group_argmax_coverage": group_argmax_coverage(test),
        "share_predicted_true": sum(g > 0 for g in gaps) / len(gaps) if gaps else None,
        # Accuracy alone ranks a labelling that predicts the majority class first.
        "balanced_accuracy": balanced_accuracy(gaps, gold),
        "majority_class": None if majority is None else majority[0],
        "majority_class_rate": None if majority is None else majority[1],
    }
    out["robust_metric"], out["robust_value"] = robust_metric(out)
    return out


def demo_label_accuracy(train: ClaimTable, demos: Sequence[Demonstration]) -> float | None:
    """How many of the demonstrations carry their gold label (of those that have one)."""
    gold_of = {c.prompt: c.gold for c in train.claims}
    right = [d.label == gold_of[d.prompt] for d in demos if gold_of.get(d.prompt) is not None]
    return sum(right) / len(right) if right else None


def eval_warnings(
    details: dict[str, Any],
    demos: Sequence[Demonstration],
    gaps: Sequence[float],
    test: ClaimTable,
    accuracy: float | None = None,
) -> list[str]:
    """What makes an accuracy look better founded than it is: demonstrations from an ICM
    run that ended degenerate or inconsistent, demonstrations that all carry one label, an
    accuracy no better than predicting the majority class, or predictions that all fall on
    one side (the accuracy is then the share of that label among the test claims' gold
    labels, whatever the demonstrations)."""
    out = []
    if details.get("icm_run_warning"):
        out.append(
            f"{details['icm_run_warning']}; these demonstrations test that labelling, not "
            "what ICM can do"
        )
    words = test.label_words
    if len(demos) >= 2 and len({d.label for d in demos}) == 1:
        word = words[0] if demos[0].label else words[1]
        out.append(f"degenerate demonstrations: all {len(demos)} are labeled {word}")
    rate = details.get("majority_class_rate")
    if rate is not None and accuracy is not None and accuracy <= rate:
        word = words[0] if details.get("majority_class") else words[1]
        balanced = details.get("balanced_accuracy")
        shown = "-" if balanced is None else f"{100 * balanced:.1f}%"
        out.append(
            f"below the majority class: accuracy {100 * accuracy:.1f}% is no better than "
            f"predicting {word} for every test claim ({100 * rate:.1f}%); balanced accuracy "
            f"{shown} (50% for any constant prediction)"
        )
    if len(gaps) >= 2 and len({g > 0 for g in gaps}) == 1:
        word = words[0] if gaps[0] > 0 else words[1]
        gold = [y for y in test.gold_labels() if y is not None]
        share = sum(y == (gaps[0] > 0) for y in gold) / len(gold) if gold else 0.0
        out.append(
            f"degenerate predictions: every one of the {len(gaps)} test claims was predicted "
            f"{word}, so the accuracy is the share of gold {word} claims ({100 * share:.1f}%); "
            "the AUROC says whether the model still ranks them"
        )
    return out


PREDICTIONS_FILE = "predictions.jsonl"


def prediction_rows(result: EvalResult) -> list[dict[str, Any]]:
    """One row per test claim: its id, group and gold label, the model's gap
    log P(true) - log P(false) and prediction (gap > 0), and the demonstrations' source."""
    return [
        {
            "id": c.id,
            "group": c.group,
            "gold": c.gold,
            "prediction": gap > 0,
            "gap": gap,
            "source": result.source,
        }
        for c, gap in zip(result.test_claims, result.gaps, strict=True)
    ]


def write_eval(out: Path, result: EvalResult) -> None:
    """eval.json (the summary) and predictions.jsonl (prediction_rows) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "eval.json", {**result.summary(), "versions": versions(), "created": now_iso()}
    )
    write_jsonl(out / PREDICTIONS_FILE, prediction_rows(result))


def evaluate_finetuned(
    cfg: EvalConfig,
    adapters: list[Path],
    on_result: Callable[[str, EvalResult], None] | None = None,
) -> list[EvalResult]:
    """The base model and each fine-tuned model, all scored in process by transformers
    (opened through the model registry, one at a time), evaluated with the same label
    source on the same test claims. `on_result(name, result)` is called as each model is
    done."""
    from icm.backends.registry import open_in_process
    from icm.backends.transformers_scorer import read_finetune_record

    bases = {read_finetune_record(a)["base"] for a in adapters}
    if len(bases) != 1:
        raise ConfigError(
            f"--finetuned: the folders were fine-tuned from different base models "
            f"({', '.join(sorted(bases))}); compare models of one base"
        )
    (base,) = bases
    if base != "embedded" and not Path(base).expanduser().exists():
        # Named here: the registry's own check would name --model-path, not given here.
        raise ConfigError(
            f"--finetuned {adapters[0]}: its base model '{base}' (finetune.json) is not "
            "there; fine-tuned models are compared with their base"
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
    for name, source in [("base", base), *[(str(a), a) for a in adapters]]:
        # One model in memory at a time: each is released when its context ends.
        with open_in_process(model, source) as opened, opened.scorer(words) as scorer:
            result = run_eval(cfg, scorer=scorer)
        result.details["model_source"] = name
        results.append(result)
        if on_result is not None:
            on_result(name, result)
    return results
