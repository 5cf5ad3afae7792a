"""The package's advertised entry points: `from icm import ...` as icm/__init__.py says."""

from __future__ import annotations

import subprocess
import sys

import icm


def test_every_name_in_all_imports() -> None:
    for name in icm.__all__:
        assert getattr(icm, name) is not None, name


def test_the_advertised_notebook_imports_work_in_a_fresh_interpreter() -> None:
    code = (
        "from icm import LoadOptions, SearchParams, get_testbed, run_icm\n"
        "import icm.search, icm.testbeds\n"
        "assert run_icm is icm.search.run_icm and get_testbed is icm.testbeds.get_testbed\n"
        "table = get_testbed('capitals').load('train', LoadOptions(size=8))\n"
        "print(len(table))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "8"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        icm.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("icm.no_such_thing did not raise")
