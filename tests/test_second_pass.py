"""Issue 23, reliability second pass: the new surfaces a new user reached (claims with
lone surrogates, `icm.api.claims_table` inputs, eval flags, exports, caches, full disks,
resumes, secrets). Each test failed before its fix; docs/reliability.md has its row.

Runs use the synthetic stand-in scorer or a fake HTTP server: no model is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_bad_inputs import QUICK, icm_in_process, one_error_line

# ------------------------------------------------------------ text that is not Unicode

SURROGATE_LINE = '{"id": "s1", "claim": "lone \\ud800 surrogate", "label": true}\n'


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_lone_surrogate_in_a_claims_file_names_file_line_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    """`"\\ud800"` is valid JSON but no Unicode text: `icm run` ended in a TypeError
    traceback from the C++ core (after making its run directory), `icm show` in a line
    naming no file ('utf-8' codec can't encode...)."""
    claims = tmp_path / f"claims{suffix}"
    other = '{"id": "s2", "claim": "fine", "label": false}\n'
    if suffix == ".jsonl":
        claims.write_text(SURROGATE_LINE + other)
    else:
        claims.write_text("[" + SURROGATE_LINE + "," + other + "]")
    out = tmp_path / "run"
    expected = f"{claims}:1: field 'claim': not valid Unicode text"
    for args in (
        (*QUICK, "--testbed", str(claims), "--out", str(out)),
        ("show", str(claims)),
    ):
        assert expected in one_error_line(icm_in_process(capsys, *args))
    assert not out.exists()


def test_a_lone_surrogate_in_a_key_or_a_relation_list_is_refused(tmp_path: Path) -> None:
    from icm.errors import DataError
    from icm.testbeds.custom import load_claims_file

    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"id": "a", "claim": "x", "same": ["b", "\\udc00"]}\n')
    with pytest.raises(DataError, match=r":1: field 'same': not valid Unicode text"):
        load_claims_file(claims)
    claims.write_text('{"id": "a", "claim": "x", "\\ud800": 1}\n')
    with pytest.raises(DataError, match=r"field '\\ud800': not valid Unicode text"):
        load_claims_file(claims)


# ------------------------------------------------------------ icm.api.claims_table


@pytest.mark.parametrize(
    ("claims", "kwargs", "message"),
    [
        ([{"id": "a", "question": None, "claim": "c"}], {}, "claims[0].question: expected a str"),
        ([{"id": "a", "question": "q", "claim": None}], {}, "claims[0].claim: expected a string"),
        (
            [{"id": "a", "question": "q", "claim": float("nan")}],
            {},
            "claims[0].claim: expected a string, got nan",
        ),
        ([{"id": "a", "question": "q", "claim": "  "}], {}, "claims[0].claim: empty"),
        ([{"id": "a", "prompt": ""}], {}, "claims[0].prompt: empty"),
        ([{"id": "a", "prompt": "lone \ud800"}], {}, "claims[0].prompt: not valid Unicode"),
        ([], {}, "claims: empty"),
        (
            [{"id": "a", "question": "q", "claim": "c"}],
            {"template": "Question: {question}\nI think this claim is "},
            "has no {claim}",
        ),
        (
            [{"id": "a", "question": "q", "claim": "c"}],
            {"template": "Claim: {claim}\nI think this claim is "},
            "claims[0].question: the template",
        ),
        ([{"id": "a", "claim": "c"}], {}, "claims[0]: needs 'prompt', or 'question' and 'claim'"),
    ],
)
def test_api_claims_table_refuses_none_nan_empty_and_a_template_without_claim(
    claims: object, kwargs: dict[str, object], message: str
) -> None:
    """Before: a claim or question None became the text "None" (NaN "nan"), an empty list or
    an empty claim was accepted, and a template without {claim} gave every claim the same
    prompt (docs/reliability.md said it was refused)."""
    from icm.api import claims_table
    from icm.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        claims_table(claims, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_api_claims_table_template_with_only_claim_needs_no_question() -> None:
    from icm.api import claims_table

    table = claims_table([{"id": "a", "claim": "c"}], template="Claim: {claim}\nI think ")
    assert table.claims[0].prompt == "Claim: c\nI think "
