"""A small typed API for notebooks: claims from plain Python objects in, labels and the
search trace out as plain records (lists of dicts, ready for pandas.DataFrame).

    from icm.api import claims_table, label
    table = claims_table([
        {"id": "p1", "question": "What is the capital of France?", "claim": "Paris", "group": "fr"},
        {"id": "p2", "question": "What is the capital of France?", "claim": "Lyon", "group": "fr"},
    ], relations=[("opposite", "p1", "p2")])
    result = label(table, scorer="embedded", K=50)
    result.records()   # [{"id": "p1", "label": True, "score": 1.3, ...}, ...]
"""

from __future__ import annotations

import contextlib
import string
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, TypeAlias

from icm import _icm_core as core
from icm.backends.base import CoreScorer, LabelScorer
from icm.config import RunConfig
from icm.data.readers import is_valid_text
from icm.errors import ConfigError
from icm.presets import with_preset
from icm.run_summary import RunSummary, summarize_run
from icm.search import IcmResult, gold_agreement, run_icm, scorer_for_all
from icm.testbeds.base import CLAIM_TEMPLATE, ClaimRecord, ClaimTable, RelationRecord
from icm.zero_shot import zero_shot_gaps, zero_shot_labels

ScorerLike: TypeAlias = LabelScorer | core.Scorer | str


def claims_table(
    claims: Sequence[Mapping[str, Any]],
    relations: Sequence[tuple[str, str, str]] = (),
    *,
    label_words: tuple[str, str] = ("True", "False"),
    template: str = CLAIM_TEMPLATE,
    name: str = "notebook",
) -> ClaimTable:
    """Build a claim table. Each claim is a mapping with an `id` and either a ready
    `prompt` or `question` and `claim` (rendered with the paper's template); optional
    `group` and `gold` (used only for reporting). Relations are (kind, id_a, id_b) with
    kind in same | at_most_one_true | opposite."""
    if isinstance(claims, Mapping | str):
        raise ConfigError(f"claims: expected a list of mappings, got a {type(claims).__name__}")
    if (
        not isinstance(label_words, tuple | list)
        or len(label_words) != 2
        or not all(isinstance(w, str) and w.strip() for w in label_words)
        or label_words[0].strip() == label_words[1].strip()
    ):
        raise ConfigError(
            f"label_words: expected two different non-empty strings, got {label_words!r}"
        )
    template_fields = _template_fields(template)
    records = []
    for i, c in enumerate(claims):
        if not isinstance(c, Mapping):
            raise ConfigError(f"claims[{i}]: expected a mapping, got {type(c).__name__}")
        if "id" not in c:
            raise ConfigError(f"claims[{i}]: field 'id' is missing")
        cid = c["id"]
        if isinstance(cid, bool) or not isinstance(cid, str | Integral):
            raise ConfigError(f"claims[{i}].id: expected a string or an integer, got {cid!r}")
        if "prompt" in c:
            prompt = _claim_text(c, i, "prompt")
        elif "claim" in c and ("question" in c or "question" not in template_fields):
            if "question" in c and "question" not in template_fields:
                # The question would be dropped silently from every prompt.
                raise ConfigError(
                    f"claims[{i}].question: the template {template!r} has no {{question}}"
                )
            parts = {name: _claim_text(c, i, name) for name in ("question", "claim") if name in c}
            prompt = template.format(**parts)
        else:
            raise ConfigError(f"claims[{i}]: needs 'prompt', or 'question' and 'claim'")
        gold = c.get("gold")
        if gold is not None and not (isinstance(gold, bool) or gold in (0, 1)):
            # bool("false") is True: only a real truth value is taken as a gold label.
            raise ConfigError(f"claims[{i}].gold: expected True, False, 1, 0 or None, got {gold!r}")
        group = c.get("group")
        if isinstance(group, bool) or not isinstance(group, str | Integral | None):
            raise ConfigError(
                f"claims[{i}].group: expected a string, an integer or None, got {group!r}"
            )
        records.append(
            ClaimRecord(
                id=str(cid),
                prompt=prompt,
                group="" if group is None else str(group),
                gold=None if gold is None else bool(gold),
                fields={k: v for k, v in c.items() if k not in ("id", "prompt", "gold")},
            )
        )
    if not records:
        raise ConfigError("claims: empty; give at least one claim")
    rels = []
    for i, r in enumerate(relations):
        if isinstance(r, str) or not isinstance(r, Sequence) or len(r) != 3:
            raise ConfigError(f"relations[{i}]: expected (kind, id_a, id_b), got {r!r}")
        kind, a, b = (str(x) for x in r)
        if a == b:
            raise ConfigError(f"relations[{i}]: relates claim '{a}' to itself")
        rels.append(RelationRecord(kind, a, b))  # type: ignore[arg-type]
    return ClaimTable(name, "all", records, rels, label_words)


def _template_fields(template: object) -> set[str]:
    """The fields `template` names; it must name {claim} (without it every claim would get
    the same prompt) and nothing but {question} and {claim}."""
    if not isinstance(template, str):
        raise ConfigError(f"template: expected a string, got {template!r}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ConfigError(f"template: {template!r} cannot be filled ({e})") from None
    unknown = sorted(fields - {"question", "claim"})
    if unknown or "claim" not in fields:
        what = f"names {{{unknown[0]}}}" if unknown else "has no {claim}"
        raise ConfigError(
            f"template: {template!r} cannot be filled with {{question}} and {{claim}} ({what})"
        )
    return fields


def _claim_text(claim: Mapping[str, Any], i: int, name: str) -> str:
    """A text field of a claim: a non-empty, valid Unicode string (None or NaN would
    become the text "None" or "nan")."""
    value = claim[name]
    if not isinstance(value, str):
        raise ConfigError(f"claims[{i}].{name}: expected a string, got {value!r}")
    if not value.strip():
        raise ConfigError(f"claims[{i}].{name}: empty")
    if not is_valid_text(value):
        raise ConfigError(f"claims[{i}].{name}: not valid Unicode text")
    return value


@dataclass
class Labels:
    """Labels of a table and the search trace, as plain records."""

    table: ClaimTable
    result: IcmResult
    options: dict[str, Any] = field(default_factory=dict)
    summary: RunSummary | None = None  # label balance, constraints violated, warnings
    zero_shot_gaps: dict[str, float] | None = None  # each claim scored alone (the reference)

    def records(self) -> list[dict[str, Any]]:
        labels, scores = self.result.labels, self.result.scores
        batch_of = {cid: b.batch for b in self.result.batches for cid in b.claim_ids}
        return [
            {
                "id": c.id,
                "label": labels.get(c.id),
                "score": scores.get(c.id),
                "group": c.group,
                "batch": batch_of.get(c.id),
                "gold": c.gold,
                "zero_shot_gap": (self.zero_shot_gaps or {}).get(c.id),
            }
            for c in self.table.claims
        ]

    def trace(self) -> list[dict[str, Any]]:
        return self.result.trace

    def agreement_with_gold(self) -> float | None:
        records = self.records()
        return gold_agreement([r["label"] for r in records], [r["gold"] for r in records])


@contextlib.contextmanager
def _scorer(scorer: ScorerLike, table: ClaimTable, cfg: RunConfig) -> Iterator[Any]:
    """The search's scorer: the one given, or a model of the registry by name
    (icm.backends.registry); "embedded", the default, is the model the options select, as
    for `icm run` (the embedded server unless base_url or a model_path folder is given)."""
    if isinstance(scorer, core.Scorer):
        yield scorer
        return
    if isinstance(scorer, LabelScorer):
        yield CoreScorer(scorer)
        return
    from icm.backends.registry import model_name, open_model

    if not isinstance(scorer, str):
        raise ConfigError(
            f"scorer: expected a LabelScorer, a core.Scorer or a model name, got {scorer!r}"
        )
    with open_model(cfg, model_name(cfg) if scorer == "embedded" else scorer) as model:
        if model.name == "synthetic":
            from icm.run import ScorerHandle, synthetic_scorer_factory

            handle = ScorerHandle(None, "synthetic")  # type: ignore[arg-type]
            yield synthetic_scorer_factory(table, cfg.seed, handle)
            return
        from icm.backends.response_cache import cache_wrapper

        # The same response cache as `icm run` (the `cache` option: default, off, a path).
        with cache_wrapper(cfg.cache) as cached, model.scorer(table.label_words) as backend:
            yield CoreScorer(cached(backend))


# RunConfig fields that name what `icm run` loads or where it writes: label() is given its
# table and returns its result, so these would be silently ignored; they are refused.
NOT_FOR_LABEL = {
    "testbed": "label() labels the table it is given; load a testbed with "
    "icm.testbeds.loading.load_table",
    "split": "label() labels the table it is given",
    "data_dir": "label() labels the table it is given",
    "consistency": "the table's relations are used as given",
    "out": "label() writes no run directory; use `icm run --testbed FILE` for one",
    "iterative": "iterative fine-tuning runs through `icm run --iterative`",
    "finetune_epochs": "iterative fine-tuning runs through `icm run --iterative`",
    "finetune_lr": "iterative fine-tuning runs through `icm run --iterative`",
    "lora_r": "iterative fine-tuning runs through `icm run --iterative`",
}


def label(table: ClaimTable, scorer: ScorerLike = "embedded", **options: Any) -> Labels:
    """Run ICM on `table`. `options` are RunConfig fields (alpha, K, seed, batch_size,
    num_seed, mp, context_k, algorithm, size, cache, model_path, preset...); the defaults
    are `icm run`'s. `size` labels that many claims in whole groups, sampled with the seed.
    Options that only make sense for `icm run` (testbed, out, ...) are refused.

    The result's `summary` says whether the labelling is degenerate (one label for every
    claim) or inconsistent, and (unless zero_shot=False) puts it beside the zero-shot
    reference, each claim scored alone (one more request per claim); a flagged result also
    raises a RuntimeWarning."""
    if not isinstance(table, ClaimTable):
        raise ConfigError(
            f"table: expected a ClaimTable (from icm.api.claims_table), got {type(table).__name__}"
        )
    for name in options:
        if name in NOT_FOR_LABEL:
            raise ConfigError(f"label(): option '{name}' does not apply: {NOT_FOR_LABEL[name]}")
    given = dict(options)
    preset = options.pop("preset", None)
    cfg = RunConfig.from_dict(options, source="label() options")
    if preset is not None:
        cfg = with_preset(cfg, str(preset), set(options))
    cfg.validate()
    if "size" in options:  # RunConfig's default (16 claims) is `icm run`'s, not label()'s
        table = table.sample_groups(cfg.size, cfg.seed)
    n_batch = cfg.batch_claims(len(table))
    zs_gaps = None
    with _scorer(scorer, table, cfg) as core_scorer:
        # The reference the summary compares ICM with (icm.zero_shot).
        one = scorer_for_all(core_scorer, len(table)) if cfg.zero_shot else None
        if one is not None:
            zs_gaps = zero_shot_gaps(one, table)
        initial = None
        if cfg.init == "zero-shot":
            assert zs_gaps is not None  # validate() refuses --init zero-shot without it
            initial = zero_shot_labels(table, zs_gaps).labels
        result = run_icm(
            table,
            core_scorer,
            cfg.search_params(n_batch),
            cfg.batch_size,
            initial_labels=initial,
        )
    summary = summarize_run(cfg, table, result, n_batch, zero_shot_gaps=zs_gaps)
    for warning in summary.warnings:
        warnings.warn(f"icm.api.label: {warning}", RuntimeWarning, stacklevel=2)
    return Labels(table, result, given, summary, zs_gaps)
