"""A slow, obvious Python re-implementation of the ICM search: the test oracle for the C++ core.

Everything is recomputed from scratch at every use (no caches, no incremental counts, no
Fenwick tree), straight from the paper's Algorithms 1 and 2 and docs/algorithm.md. It
draws random numbers from the same generator (std::mt19937_64, re-implemented here) in
the same order as the C++ search, so for the same scorer both must produce the same
trace, step by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MASK64 = (1 << 64) - 1
MP_TERM_SCALE = 4294967296.0

SAME, AT_MOST_ONE_TRUE, OPPOSITE = "same", "at_most_one_true", "opposite"


class MT19937_64:
    """std::mt19937_64 with its standard seeding."""

    N, M = 312, 156

    def __init__(self, seed: int) -> None:
        self.mt = [0] * self.N
        self.mt[0] = seed & MASK64
        for i in range(1, self.N):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK64
        self.index = self.N

    def _twist(self) -> None:
        upper, lower = 0xFFFFFFFF80000000, 0x7FFFFFFF
        for i in range(self.N):
            x = (self.mt[i] & upper) | (self.mt[(i + 1) % self.N] & lower)
            xa = x >> 1
            if x & 1:
                xa ^= 0xB5026F5AA96619E9
            self.mt[i] = self.mt[(i + self.M) % self.N] ^ xa
        self.index = 0

    def next_u64(self) -> int:
        if self.index >= self.N:
            self._twist()
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & MASK64

    def unit(self) -> float:
        return (self.next_u64() >> 11) * 2.0**-53

    def below(self, n: int) -> int:
        threshold = ((1 << 64) - n) % n
        while True:
            x = self.next_u64()
            if x >= threshold:
                return x % n


class SplitMix64:
    """The per-claim context stream of the C++ core."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def below(self, n: int) -> int:
        threshold = ((1 << 64) - n) % n
        while True:
            self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
            x = mix_seed(self.state - 0x9E3779B97F4A7C15 & MASK64)
            if x >= threshold:
                return x % n


def mix_seed(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def llround(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def holds(kind: str, a: bool | None, b: bool | None) -> bool:
    if a is None or b is None:
        return True
    if kind == SAME:
        return a == b
    if kind == AT_MOST_ONE_TRUE:
        return not (a and b)
    return a != b


def options(kind: str, code: bool) -> list[tuple[bool, bool]]:
    if code:  # the original code's two decisions
        return [(False, False), (True, True)] if kind == SAME else [(False, True), (True, False)]
    return [(a, b) for a in (False, True) for b in (False, True) if holds(kind, a, b)]


@dataclass
class Params:
    alpha: float = 30.0
    seed: int = 1
    num_seed: int = 8
    K: int = 100
    fix_K: int = 10
    initial_T: float = 10.0
    final_T: float = 0.01
    decay: float = 0.99
    log_beta: float = 0.99
    schedule: str = "log"
    counter: str = "iteration"  # or "accepted"
    group_weight: float = 100.0
    objective: str = "mean-gap"  # or "sum-logprob"
    mp: str = "exact"  # or "sparse"
    context_k: int = 16
    context_regrow: float = 1.25
    fix_options_code: bool = False
    fix_scan: bool = False
    fix_dummy_baseline: bool = False
    # The original code's scan (fix_scan) does not stop at a round that finds no fix once
    # an earlier round of the same call applied one: it runs on to fix_K rounds.
    fix_run_on: bool = False
    seeds_at_batch_start: bool = False  # the original code: the first num_seed claims


Request = tuple[int, tuple[int, ...], tuple[bool, ...]]
ScoreFn = Callable[[Request], tuple[float, float]]


class ReferenceSearch:
    def __init__(
        self,
        groups: Sequence[str],
        relations: Sequence[tuple[str, int, int]],
        params: Params,
        score: ScoreFn,
        at_least_one_true: Sequence[Sequence[int]] = (),
    ) -> None:
        self.n = len(groups)
        self.p = params
        self.score = score
        self.relations = list(relations)
        # Constraints are numbered like the core's: relations, then group constraints.
        self.groups_constraints = [list(g) for g in at_least_one_true]
        # Group ids by first appearance; "" is a group of its own.
        keys = [g if g else f"\0own{i}" for i, g in enumerate(groups)]
        first: dict[str, int] = {}
        for k in keys:
            first.setdefault(k, len(first))
        self.group = [first[k] for k in keys]
        self.order = sorted(range(self.n), key=lambda i: (self.group[i], i))
        self.labels: list[bool | None] = [None] * self.n
        self.rng = MT19937_64(params.seed)
        self.iteration = 0
        self.accepted = 0
        self.epoch = 0
        self.pool: list[int] = []
        self.initialized = False
        self.fix_rounds = 0  # rounds the last consistency_fix ran

    # -- the objective ---------------------------------------------------------------
    def context(self, target: int, labels: list[bool | None]) -> list[int]:
        if self.p.mp == "exact":
            return [c for c in self.order if c != target and labels[c] is not None]
        candidates = [c for c in self.pool if c != target]
        k = min(self.p.context_k, len(candidates))
        if k == len(candidates):
            chosen = candidates
        else:
            rng = SplitMix64(mix_seed(mix_seed((self.p.seed + self.epoch) & MASK64) ^ target))
            picked: set[int] = set()
            for j in range(len(candidates) - k, len(candidates)):
                t = rng.below(j + 1)
                picked.add(j if t in picked else t)
            chosen = [candidates[q] for q in picked]
        rank = {c: r for r, c in enumerate(self.order)}
        return sorted(chosen, key=lambda c: rank[c])

    def request(self, target: int, labels: list[bool | None]) -> Request:
        demos = self.context(target, labels)
        return (target, tuple(demos), tuple(bool(labels[d]) for d in demos))

    def constraint_holds(self, c: int, labels: list[bool | None]) -> bool:
        if c < len(self.relations):
            kind, a, b = self.relations[c]
            return holds(kind, labels[a], labels[b])
        return any(labels[m] is not False for m in self.groups_constraints[c - len(self.relations)])

    def violated(self, labels: list[bool | None]) -> list[int]:
        n = len(self.relations) + len(self.groups_constraints)
        return [c for c in range(n) if not self.constraint_holds(c, labels)]

    def inconsistencies(self, labels: list[bool | None]) -> int:
        return len(self.violated(labels))

    def utility(self, labels: list[bool | None]) -> float:
        total, n = 0, 0
        for i in range(self.n):
            if labels[i] is None:
                continue
            lt, lf = self.score(self.request(i, labels))
            if self.p.objective == "mean-gap":
                term = (lt - lf) if labels[i] else -(lt - lf)
            else:
                term = lt if labels[i] else lf
            total += llround(term * MP_TERM_SCALE)
            n += 1
        mp = total / MP_TERM_SCALE
        if self.p.objective == "mean-gap":
            mp = 0.0 if n == 0 else mp / n
        return self.p.alpha * mp - self.inconsistencies(labels)

    # -- the search ------------------------------------------------------------------
    def temperature(self, n: int) -> float:
        p = self.p
        if p.schedule == "exp":
            t = p.initial_T * math.pow(p.decay, n)
        else:
            t = p.initial_T / (1.0 + p.log_beta * math.log1p(n))
        return max(p.final_T, t)

    def refresh_contexts(self) -> None:
        if self.p.mp != "sparse":
            return
        n_labeled = sum(lab is not None for lab in self.labels)
        size = len(self.pool)
        small = size < self.p.context_k + 1
        if n_labeled > size and (small or n_labeled >= self.p.context_regrow * size):
            self.pool = [c for c in range(self.n) if self.labels[c] is not None]
            self.epoch += 1

    def consistency_fix(self, labels: list[bool | None], baseline: float) -> list[bool | None]:
        p = self.p
        found_before = False
        self.fix_rounds = 0
        for _ in range(p.fix_K):
            violated = self.violated(labels)
            if not violated:
                break
            self.fix_rounds += 1
            if not p.fix_scan:
                r = violated[self.rng.below(len(violated))]
                best, best_u = self.best_option(labels, r)
                if best_u > baseline:
                    labels, baseline = best, best_u
            else:
                for i in range(len(violated), 1, -1):
                    j = self.rng.below(i)
                    violated[i - 1], violated[j] = violated[j], violated[i - 1]
                found = False
                for r in violated:
                    best, best_u = self.best_option(labels, r)
                    if best_u >= baseline:
                        labels, baseline, found = best, best_u, True
                        break
                if not found and not (p.fix_run_on and found_before):
                    break
                found_before = found_before or found
        return labels

    def best_option(self, labels: list[bool | None], c: int) -> tuple[list[bool | None], float]:
        if c < len(self.relations):
            kind, a, b = self.relations[c]
            changes = [[(a, la), (b, lb)] for la, lb in options(kind, self.p.fix_options_code)]
        else:  # at least one true: make one member true
            changes = [[(m, True)] for m in self.groups_constraints[c - len(self.relations)]]
        best, best_u = labels, -math.inf
        for change in changes:
            trial = list(labels)
            for claim, label in change:
                trial[claim] = label
            u = self.utility(trial)
            if u > best_u:
                best, best_u = trial, u
        return best, best_u

    def weights(self) -> list[float]:
        labeled_groups = {self.group[c] for c in range(self.n) if self.labels[c] is not None}
        return [
            self.p.group_weight
            if self.labels[c] is None and self.group[c] in labeled_groups
            else 1.0
            for c in range(self.n)
        ]

    def initialize(self) -> dict:
        k = min(self.n, self.p.num_seed)
        order = list(range(self.n))
        for i in range(0 if self.p.seeds_at_batch_start else k):
            j = i + self.rng.below(self.n - i)
            order[i], order[j] = order[j], order[i]
        seeds = [True] * (k // 2) + [False] * (k - k // 2)
        for i in range(k, 1, -1):
            j = self.rng.below(i)
            seeds[i - 1], seeds[j] = seeds[j], seeds[i - 1]
        for i in range(k):
            self.labels[order[i]] = seeds[i]
        self.refresh_contexts()
        self.labels = self.consistency_fix(self.labels, self.utility(self.labels))
        self.initialized = True
        return {
            "outcome": "init",
            "labels": list(self.labels),
            "utility": self.utility(self.labels),
        }

    def step(self) -> dict:
        if not self.initialized:
            return self.initialize()
        self.refresh_contexts()
        counter = self.iteration if self.p.counter == "iteration" else self.accepted
        temperature = self.temperature(counter)
        self.iteration += 1
        weights = self.weights()
        target = self.rng.unit() * sum(weights)
        cumulative, claim = 0.0, self.n - 1
        for c, w in enumerate(weights):
            cumulative += w
            if cumulative > target:
                claim = c
                break
        lt, lf = self.score(self.request(claim, self.labels))
        proposed = (lt - lf) > 0
        row = {"claim": claim, "proposed": proposed, "temperature": temperature}
        if self.labels[claim] == proposed:
            row.update(
                outcome="unchanged", labels=list(self.labels), utility=self.utility(self.labels)
            )
            return row
        u_current = self.utility(self.labels)
        candidate = list(self.labels)
        candidate[claim] = proposed
        baseline = -math.inf if self.p.fix_dummy_baseline else self.utility(candidate)
        candidate = self.consistency_fix(candidate, baseline)
        delta = self.utility(candidate) - u_current
        accept_p = 1.0 if delta >= 0 else math.exp(delta / temperature)
        accept = self.rng.unit() < accept_p
        if accept:
            self.labels = candidate
            self.accepted += 1
        row.update(
            outcome="accepted" if accept else "rejected",
            delta=delta,
            labels=list(self.labels),
            utility=self.utility(self.labels),
        )
        return row
