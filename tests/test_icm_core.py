"""The Python face of the C++ core (bindings/_icm_core.cpp): bad indices are Python errors
naming the argument, not a crashed interpreter; the main types print readably and are
documented."""

from __future__ import annotations

import subprocess
import sys

import pytest

from icm import _icm_core as core


def claim_set() -> core.ClaimSet:
    claims = [core.Claim(f"c{i}", f"Claim {i} is ", f"g{i // 2}") for i in range(4)]
    return core.ClaimSet(claims, [core.Relation(core.RelationKind.OPPOSITE, 0, 1)])


def test_an_out_of_range_index_raises_index_error_not_a_segfault() -> None:
    # In a child interpreter: before the check, this call read past a vector and crashed it.
    code = (
        "from icm import _icm_core as c\n"
        "s = c.ClaimSet([c.Claim('a', 'A is ', 'g'), c.Claim('b', 'B is ', 'g')], [])\n"
        "try:\n"
        "    s.group_members(1000000)\n"
        "except IndexError as e:\n"
        "    print('IndexError:', e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, f"exit code {r.returncode}: {r.stderr}"
    assert r.stdout.strip() == "IndexError: group 1000000 out of range [0, 1)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.group_members(2), "group 2 out of range [0, 2)"),
        (lambda s: s.group_members(-1), "group -1 out of range [0, 2)"),
        (lambda s: s.group_of(4), "claim 4 out of range [0, 4)"),
        (lambda s: s.subset([0, 9]), "claim index 9 out of range [0, 4)"),
    ],
)
def test_index_errors_name_the_argument_and_the_size(call, message: str) -> None:
    with pytest.raises(IndexError, match=message.replace("[", r"\[").replace(")", r"\)")):
        call(claim_set())


def test_valid_indices_still_work() -> None:
    s = claim_set()
    assert [s.group_members(g) for g in range(s.n_groups)] == [[0, 1], [2, 3]]
    assert [s.group_of(i) for i in range(4)] == [0, 0, 1, 1]


def test_the_main_types_print_their_fields() -> None:
    s = claim_set()
    assert repr(s) == "ClaimSet(n_claims=4, n_groups=2, n_relations=1, n_group_constraints=0)"
    assert repr(s.claims[0]) == "Claim(id='c0', prompt='Claim 0 is ', group='g0')"
    assert repr(s.relations[0]) == "Relation(kind=RelationKind.OPPOSITE, a=0, b=1)"
    assert repr(core.LabelScore(-0.25, -1.5)) == "LabelScore(logp_true=-0.25, logp_false=-1.5)"
    params = core.search_params_paper()
    params.max_iterations = 5
    assert repr(params).startswith("SearchParams(alpha=30.0, seed=27565976, num_seed=8, ")
    assert "max_iterations=5" in repr(params)
    truth = [core.Label.TRUE, core.Label.FALSE] * 2
    scorer = core.SyntheticScorer(truth, core.SyntheticScorerParams())
    search = core.Search(s, params, scorer)
    row = search.step()
    assert repr(row).startswith("TraceRow(iteration=0, outcome=StepOutcome.INIT, ")
    assert repr(search.state()).startswith("SearchState(n_claims=4, n_labeled=")
    # A long prompt is cut, not printed whole.
    assert repr(core.Claim("x", "y" * 500)).endswith("...', group='')")


@pytest.mark.parametrize(
    "obj",
    [
        core.Claim,
        core.ClaimSet,
        core.Relation,
        core.LabelScore,
        core.SearchParams,
        core.SearchState,
        core.TraceRow,
        core.Search,
        core.Scorer,
        core.ClaimSet.group_members,
        core.ClaimSet.group_of,
        core.ClaimSet.subset,
        core.Search.step,
        core.Search.restore,
        core.SearchParams.validate,
    ],
)
def test_documented(obj: object) -> None:
    doc = obj.__doc__ or ""
    # nanobind starts a function's __doc__ with its signature; the text follows it.
    assert len(doc.split("\n\n")[-1].strip()) > 10, obj
