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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from icm import _icm_core as core
from icm.backends.base import CoreScorer, LabelScorer
from icm.config import RunConfig
from icm.errors import ConfigError
from icm.search import IcmResult, run_icm
from icm.testbeds.base import CLAIM_TEMPLATE, ClaimRecord, ClaimTable, RelationRecord

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
    records = []
    for i, c in enumerate(claims):
        if "id" not in c:
            raise ConfigError(f"claims[{i}]: field 'id' is missing")
        if "prompt" in c:
            prompt = str(c["prompt"])
        elif "question" in c and "claim" in c:
            prompt = template.format(question=c["question"], claim=c["claim"])
        else:
            raise ConfigError(f"claims[{i}]: needs 'prompt', or 'question' and 'claim'")
        gold = c.get("gold")
        records.append(
            ClaimRecord(
                id=str(c["id"]),
                prompt=prompt,
                group=str(c.get("group", "") or ""),
                gold=None if gold is None else bool(gold),
                fields={k: v for k, v in c.items() if k not in ("id", "prompt", "gold")},
            )
        )
    rels = [RelationRecord(kind, a, b) for kind, a, b in relations]  # type: ignore[arg-type]
    return ClaimTable(name, "all", records, rels, label_words)


@dataclass
class Labels:
    """Labels of a table and the search trace, as plain records."""

    table: ClaimTable
    result: IcmResult
    options: dict[str, Any] = field(default_factory=dict)

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
            }
            for c in self.table.claims
        ]

    def trace(self) -> list[dict[str, Any]]:
        return self.result.trace

    def agreement_with_gold(self) -> float | None:
        pairs = [(r["label"], r["gold"]) for r in self.records()]
        known = [(a, b) for a, b in pairs if a is not None and b is not None]
        return sum(a == b for a, b in known) / len(known) if known else None


@contextlib.contextmanager
def _scorer(scorer: ScorerLike, table: ClaimTable, cfg: RunConfig) -> Iterator[Any]:
    if isinstance(scorer, core.Scorer):
        yield scorer
    elif isinstance(scorer, LabelScorer):
        yield CoreScorer(scorer)
    elif scorer == "synthetic":
        from icm.run import ScorerHandle, synthetic_scorer_factory

        handle = ScorerHandle(None, "synthetic")  # type: ignore[arg-type]
        yield synthetic_scorer_factory(table, cfg.seed, handle)
    elif scorer == "embedded":
        from icm.backends import open_backend

        with open_backend(cfg, table.label_words) as backend:
            yield CoreScorer(backend)
    else:
        raise ConfigError(
            f"scorer: expected a LabelScorer, a core.Scorer, 'embedded' or "
            f"'synthetic', got {scorer!r}"
        )


def label(table: ClaimTable, scorer: ScorerLike = "embedded", **options: Any) -> Labels:
    """Run ICM on `table`. `options` are RunConfig fields (alpha, K, seed, batch_size,
    num_seed, mp, context_k, algorithm, ...); the defaults are `icm run`'s."""
    cfg = RunConfig.from_dict(options, source="label() options")
    cfg.validate()
    with _scorer(scorer, table, cfg) as core_scorer:
        result = run_icm(table, core_scorer, cfg.search_params(), cfg.batch_size)
    return Labels(table, result, options)
