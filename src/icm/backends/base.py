"""The scoring interface between the search and a language model.

A LabelScorer turns prompts into (log P(true word), log P(false word)) for the next token.
The C++ search talks to it through CoreScorer, an icm._icm_core.Scorer.
"""

from __future__ import annotations

import math
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from icm import _icm_core as core
from icm.errors import IcmError

# The original code's floor on the summed label probability.
LABEL_PROB_FLOOR = 1e-5


def label_logprobs(
    top_logprobs: Mapping[str, float],
    label_words: tuple[str, str] = ("True", "False"),
    floor: float = LABEL_PROB_FLOOR,
) -> tuple[float, float]:
    """The original rule: sum exp(logprob) of the top-k tokens whose text contains the label
    word (case-insensitive); a token containing both words, or neither, counts for none;
    add `floor`; take the log. With neither word in the top-k both are log(floor), so the
    gap is 0."""
    true_word, false_word = (w.lower() for w in label_words)
    mass_true = mass_false = floor
    for token, logprob in top_logprobs.items():
        text = token.lower()
        has_true, has_false = true_word in text, false_word in text
        if has_true == has_false:
            continue
        if has_true:
            mass_true += math.exp(logprob)
        else:
            mass_false += math.exp(logprob)
    return math.log(mass_true), math.log(mass_false)


class WarningSource:
    """A part of the scoring path that says warnings: each once on stderr, kept in
    `warnings` for the run's log.txt and metrics.json, and passed to `on_warning` (set by
    the run: its log) as it is said. Subclasses call `_start_warnings()` in __init__."""

    warnings: list[str]
    on_warning: Callable[[str], None] | None

    def _start_warnings(self) -> None:
        self.warnings = []
        self.on_warning = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"icm: warning: {message}", file=sys.stderr, flush=True)
            if self.on_warning is not None:
                self.on_warning(message)


@dataclass
class BackendStats:
    """Counts of what a backend did; every benchmark and run reports them."""

    requests: int = 0  # prompts scored by the model (cache misses)
    prompt_tokens: int = 0  # as the server reports them (usage.prompt_tokens)
    cached_prompt_tokens: int = 0  # of which the server's prefix cache served
    # Answers whose usage had no prompt_tokens_details (vLLM without
    # --enable-prompt-tokens-details): cached_prompt_tokens knows nothing of those.
    answers_without_cached_token_details: int = 0
    prompt_chars: int = 0
    cache_hits: int = 0  # prompts answered by a response cache
    retries: int = 0
    failures: int = 0  # requests that failed after all retries
    seconds: float = 0.0  # wall time spent waiting for scores

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LabelScorer(ABC):
    """Scores prompts with a language model. Implementations: backends/*.py."""

    label_words: tuple[str, str] = ("True", "False")
    model_id: str = "unknown"

    def __init__(self) -> None:
        self.stats = BackendStats()

    @abstractmethod
    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        """(log P(true word), log P(false word)) per prompt, in order."""

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the prompt that determines this scorer's answers: the key of
        the response cache. Subclasses add their request parameters."""
        return {
            "scorer": type(self).__name__,
            "model_id": self.model_id,
            "label_words": list(self.label_words),
            "floor": LABEL_PROB_FLOOR,
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or processes."""

    def __enter__(self) -> LabelScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


FLOORED_LOGPROB = math.log(LABEL_PROB_FLOOR)


class ScoresFloored(IcmError):
    """The label words are missing from the model's top-k logprobs: every gap is 0 and
    the search is blind. Resuming cannot help; a new run with other settings can."""

    resumable = False


class FloorWatch:
    """Counts answers in which a label word had no probability mass in the top-k logprobs
    (its log-probability is exactly the floor), and stops a run whose first answers are
    mostly floored on both words: every gap is then 0, mutual predictability is 0 at
    every step, and the search would anneal for its whole length on nothing."""

    CHECK_AFTER = 16  # answers seen before the check (or fewer, when `check` is called)

    def __init__(self, label_words: tuple[str, str], hint: str = "") -> None:
        self.label_words = label_words
        self.hint = hint
        self.answers = 0
        self.floored_both = 0  # neither word in the top-k: gap exactly 0
        self.floored_true = 0  # only the true word missing
        self.floored_false = 0  # only the false word missing
        self.checked = False
        self._lock = threading.Lock()

    def observe(self, pairs: Sequence[tuple[float, float]]) -> None:
        with self._lock:  # batches searched at once score from several threads
            self._count(pairs)
        if not self.checked and self.answers >= self.CHECK_AFTER:
            self.check()

    def _count(self, pairs: Sequence[tuple[float, float]]) -> None:
        for t, f in pairs:
            self.answers += 1
            if t == FLOORED_LOGPROB and f == FLOORED_LOGPROB:
                self.floored_both += 1
            elif t == FLOORED_LOGPROB:
                self.floored_true += 1
            elif f == FLOORED_LOGPROB:
                self.floored_false += 1

    def check(self) -> None:
        """Raise ScoresFloored when most answers so far have neither label word."""
        if self.checked or not self.answers:
            return
        self.checked = True
        if 2 * self.floored_both > self.answers:
            true_word, false_word = self.label_words
            raise ScoresFloored(
                f"scores floored: neither '{true_word}' nor '{false_word}' is among the "
                f"model's top logprobs in {self.floored_both} of its first {self.answers} "
                "answers, so every gap is 0 and the search cannot tell the labels apart; "
                + (self.hint or "raise --logprobs, check the label words, or use another model")
            )

    def as_dict(self) -> dict[str, int]:
        return {
            "answers": self.answers,
            "neither_label_word": self.floored_both,
            "no_true_word": self.floored_true,
            "no_false_word": self.floored_false,
        }

    def line(self) -> str | None:
        """A summary line when any answer was floored, else None."""
        partly = self.floored_true + self.floored_false
        if not (self.floored_both or partly):
            return None
        true_word, false_word = self.label_words
        return (
            f"floored scores: {self.floored_both} of {self.answers} answers had neither "
            f"'{true_word}' nor '{false_word}' in the top logprobs (gap 0), {partly} only one "
            f"of them ({self.floored_true} without '{true_word}', {self.floored_false} without "
            f"'{false_word}')"
        )


class CoreScorer(core.Scorer):
    """Adapts a LabelScorer to the C++ search's Scorer interface."""

    def __init__(self, scorer: LabelScorer, floor_watch: FloorWatch | None = None) -> None:
        super().__init__()
        self.scorer = scorer
        self.floor_watch = floor_watch

    def score(self, requests: list[core.ScoreRequest]) -> list[core.LabelScore]:
        pairs = self.scorer.score_prompts([r.prompt for r in requests])
        if self.floor_watch is not None:
            self.floor_watch.observe(pairs)
        return [core.LabelScore(t, f) for t, f in pairs]

    def reads_prompt_text(self) -> bool:
        return True
