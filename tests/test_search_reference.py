"""The C++ search must take exactly the steps of the slow Python reference (reference_icm.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest

from icm import _icm_core as core
from tests.reference_icm import AT_MOST_ONE_TRUE, OPPOSITE, SAME, Params, ReferenceSearch

OUTCOMES = {
    core.StepOutcome.INIT: "init",
    core.StepOutcome.UNCHANGED: "unchanged",
    core.StepOutcome.ACCEPTED: "accepted",
    core.StepOutcome.REJECTED: "rejected",
}


def problem() -> tuple[list[str], list[tuple[str, int, int]], list[bool], list[list[int]]]:
    """21 claims: 4 questions x 3 answers (at most one true; for two of them also at least
    one true: exactly one), 2 twin pairs (opposite), 2 same-answer pairs (same), 1 lone claim."""
    groups: list[str] = []
    relations: list[tuple[str, int, int]] = []
    truth: list[bool] = []
    for q in range(4):
        base = len(groups)
        groups += [f"q{q}"] * 3
        truth += [a == q % 3 for a in range(3)]
        relations += [
            (AT_MOST_ONE_TRUE, base + a, base + b) for a in range(3) for b in range(a + 1, 3)
        ]
    for t in range(2):
        base = len(groups)
        groups += [f"t{t}"] * 2
        truth += [t == 0, t != 0]
        relations.append((OPPOSITE, base, base + 1))
    for s in range(2):
        base = len(groups)
        groups += [f"s{s}"] * 2
        truth += [s == 0, s == 0]
        relations.append((SAME, base, base + 1))
    groups.append("")
    truth.append(True)
    return groups, relations, truth, [[0, 1, 2], [6, 7, 8]]


def make_score(truth: list[bool]):
    def score(request: tuple[int, tuple[int, ...], tuple[bool, ...]]) -> tuple[float, float]:
        target, demos, labels = request
        agree = sum(1 if lab == truth[d] else -1 for d, lab in zip(demos, labels, strict=True))
        agreement = agree / len(demos) if demos else 0.0
        digest = hashlib.blake2b(repr(request).encode(), digest_size=8).digest()
        noise = int.from_bytes(digest, "little") / 2**64 * 2 - 1
        sign = 1.0 if truth[target] else -1.0
        gap = sign * (0.6 + 1.2 * agreement) + 1.5 * noise
        return -math.log1p(math.exp(-gap)), -math.log1p(math.exp(gap))

    return score


class PyScorer(core.Scorer):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def score(self, requests):
        out = []
        for r in requests:
            lt, lf = self.fn(
                (r.target, tuple(r.demos), tuple(x == core.Label.TRUE for x in r.demo_labels))
            )
            out.append(core.LabelScore(lt, lf))
        return out

    def reads_prompt_text(self) -> bool:
        return False


def core_params(p: Params) -> core.SearchParams:
    q = core.SearchParams()
    q.alpha, q.seed, q.num_seed, q.max_iterations = p.alpha, p.seed, p.num_seed, p.K
    q.consistency_fix_k, q.initial_t, q.final_t, q.decay = p.fix_K, p.initial_T, p.final_T, p.decay
    q.log_beta, q.group_weight = p.log_beta, p.group_weight
    q.schedule = core.Schedule.LOG if p.schedule == "log" else core.Schedule.EXP
    q.schedule_counter = (
        core.ScheduleCounter.ITERATION
        if p.counter == "iteration"
        else core.ScheduleCounter.ACCEPTED
    )
    q.mp_objective = (
        core.MpObjective.MEAN_LOGIT_GAP
        if p.objective == "mean-gap"
        else core.MpObjective.SUM_LOGPROB
    )
    q.mp_mode = core.MpMode.EXACT if p.mp == "exact" else core.MpMode.SPARSE
    q.context_k, q.context_regrow = p.context_k, p.context_regrow
    q.fix_options = core.FixOptions.CODE if p.fix_options_code else core.FixOptions.CONSISTENT
    q.fix_pair_search = core.FixPairSearch.SCAN if p.fix_scan else core.FixPairSearch.SAMPLE
    q.fix_baseline = core.FixBaseline.DUMMY if p.fix_dummy_baseline else core.FixBaseline.CURRENT
    q.seed_placement = (
        core.SeedPlacement.BATCH_START if p.seeds_at_batch_start else core.SeedPlacement.RANDOM
    )
    return q


CODE = {
    "counter": "accepted",
    "log_beta": 2.0,
    "fix_options_code": True,
    "fix_scan": True,
    "fix_dummy_baseline": True,
    "seeds_at_batch_start": True,
}

VARIANTS = {
    "paper-exact": {},
    "code-exact": CODE,
    "paper-sparse": {"mp": "sparse", "context_k": 4},
    "code-sparse": {**CODE, "mp": "sparse", "context_k": 5},
    "sum-logprob-exp": {"objective": "sum-logprob", "schedule": "exp", "alpha": 2.0},
    "few-seeds-low-alpha": {"num_seed": 2, "alpha": 1.5, "fix_K": 3},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("prefetch_depth", [0, 3])
def test_cpp_search_takes_the_reference_steps(variant: str, seed: int, prefetch_depth: int) -> None:
    """With speculative prefetch too: it may only regroup the requests, never change a step."""
    groups, relations, truth, exactly_one = problem()
    params = Params(seed=seed, K=70, **VARIANTS[variant])
    score = make_score(truth)
    reference = ReferenceSearch(groups, relations, params, score, at_least_one_true=exactly_one)

    kinds = {
        SAME: core.RelationKind.SAME,
        AT_MOST_ONE_TRUE: core.RelationKind.AT_MOST_ONE_TRUE,
        OPPOSITE: core.RelationKind.OPPOSITE,
    }
    claim_set = core.ClaimSet(
        [core.Claim(f"c{i}", f"claim {i}", g) for i, g in enumerate(groups)],
        [core.Relation(kinds[k], a, b) for k, a, b in relations],
        group_constraints=[
            core.GroupConstraint(core.GroupKind.AT_LEAST_ONE_TRUE, m) for m in exactly_one
        ],
    )
    search_params = core_params(params)
    search_params.prefetch_depth = prefetch_depth
    search = core.Search(claim_set, search_params, PyScorer(score))
    outcomes = set()
    for step in range(params.K + 1):
        want = reference.step()
        got = search.step()
        labels = [None if x == core.Label.UNSET else x == core.Label.TRUE for x in search.labels]
        where = f"{variant} seed {seed} step {step}"
        assert OUTCOMES[got.outcome] == want["outcome"], where
        assert labels == want["labels"], where
        assert got.utility == pytest.approx(want["utility"], rel=1e-12, abs=1e-12), where
        if want["outcome"] != "init":
            assert got.claim == want["claim"], where
            assert got.temperature == pytest.approx(want["temperature"], rel=1e-15), where
        outcomes.add(want["outcome"])
    assert search.done
    # The comparison exercised the interesting branches.
    assert {"accepted", "unchanged"} <= outcomes


KINDS = {
    SAME: core.RelationKind.SAME,
    AT_MOST_ONE_TRUE: core.RelationKind.AT_MOST_ONE_TRUE,
    OPPOSITE: core.RelationKind.OPPOSITE,
}
TRACE_FIELDS = [
    "iteration",
    "outcome",
    "claim",
    "proposed",
    "temperature",
    "delta",
    "utility",
    "mp",
    "inconsistent",
    "n_labeled",
    "n_fixed",
    "n_requests",
    "n_cache_hits",
    "n_prompt_claims",
    "n_accepted",
]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prefetch_changes_no_trace_field_and_counts_its_waste(variant: str) -> None:
    """Every trace field (request counts included) equals the run without prefetch; the
    speculative requests that were never needed are counted, and the scorer saw exactly
    the search's requests plus those."""
    groups, relations, truth, exactly_one = problem()
    claim_set = core.ClaimSet(
        [core.Claim(f"c{i}", f"claim {i}", g) for i, g in enumerate(groups)],
        [core.Relation(KINDS[k], a, b) for k, a, b in relations],
        group_constraints=[
            core.GroupConstraint(core.GroupKind.AT_LEAST_ONE_TRUE, m) for m in exactly_one
        ],
    )
    params = core_params(Params(seed=3, K=150, **VARIANTS[variant]))
    score = make_score(truth)

    class Counting(PyScorer):
        sent = 0

        def score(self, requests):
            self.sent += len(requests)
            return super().score(requests)

    plain = core.Search(claim_set, params, Counting(score)).run()
    rounds = [plain[-1].n_rounds]
    prefetched: dict[tuple[int, int, int], int] = {}
    # (depth, call limit, fill): fill 8 fills each call's last wave of 8 requests.
    for depth, call_limit, fill in ((1, 0, 0), (4, 0, 0), (4, 1, 0), (4, 1, 8)):
        params.prefetch_depth = depth
        params.prefetch_call_limit = call_limit
        params.prefetch_fill = fill
        scorer = Counting(score)
        rows = core.Search(claim_set, params, scorer).run()
        for want, got in zip(plain, rows, strict=True):
            assert [getattr(got, f) for f in TRACE_FIELDS] == [
                getattr(want, f) for f in TRACE_FIELDS
            ], f"{variant} depth {depth}/{call_limit}/{fill} iteration {got.iteration}"
        last = rows[-1]
        assert 0 < last.n_prefetched_used <= last.n_prefetched
        assert scorer.sent == last.n_requests + last.n_prefetched - last.n_prefetched_used
        rounds.append(last.n_rounds)
        prefetched[depth, call_limit, fill] = last.n_prefetched
    assert rounds[0] > rounds[1] > rounds[2], rounds
    # A call limit of 1 speculates only one-request calls: fewer requests sent ahead, and
    # still fewer rounds than none.
    assert prefetched[4, 1, 0] < prefetched[4, 0, 0] and rounds[3] < rounds[0], (
        prefetched,
        rounds,
    )
    # The fill sends some of the larger calls' requests too.
    assert prefetched[4, 1, 8] > prefetched[4, 1, 0], prefetched


def test_the_original_fix_rounds_after_one_that_finds_nothing_change_no_label() -> None:
    """docs/algorithm.md row 4: icm's code-mode ConsistencyFix stops at the first round
    that finds no fix, where the original runs on; the labels must be the same."""
    groups, relations, truth, at_least_one = problem()
    score = make_score(truth)
    ran_on = 0
    for seed in range(60):
        p = Params(seed=seed, fix_options_code=True, fix_scan=True, fix_K=10)
        rng = ReferenceSearch(groups, relations, p, score, at_least_one).rng
        start: list[bool | None] = [  # drawn at random: inconsistent as a rule
            None if rng.below(4) == 0 else bool(rng.below(2)) for _ in range(len(groups))
        ]
        for baseline in (-math.inf, ReferenceSearch(groups, relations, p, score).utility(start)):
            # Both from the same random state: they differ only in the rounds they run.
            icm_search = ReferenceSearch(groups, relations, p, score, at_least_one)
            original = ReferenceSearch(
                groups, relations, dataclasses.replace(p, fix_run_on=True), score, at_least_one
            )
            ours = icm_search.consistency_fix(list(start), baseline)
            theirs = original.consistency_fix(list(start), baseline)
            assert ours == theirs, f"seed {seed}, baseline {baseline}"
            ran_on += original.fix_rounds == p.fix_K and original.inconsistencies(theirs) > 0
    # The case the rule is about must occur: fixes, then rounds that find none.
    assert ran_on > 0
