"""The C++ unit tests (ctest), built here with -Wall -Wextra -Werror, plus style checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "ctest"


def run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def tool(name: str) -> str:
    """Prefer the copy in this virtual environment (installed by uv with the dev group)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


@pytest.mark.slow  # builds the core and its tests from scratch: minutes on 2 cores
def test_cpp_unit_tests_build_warning_free_and_pass() -> None:
    configure = run(
        [
            tool("cmake"),
            "-S",
            ".",
            "-B",
            str(BUILD),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DICM_WERROR=ON",
            "-DICM_BUILD_TESTS=ON",
        ]
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    build = run([tool("cmake"), "--build", str(BUILD), "--parallel", "2"])
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    ctest = run([tool("ctest"), "--test-dir", str(BUILD), "--output-on-failure"])
    assert ctest.returncode == 0, ctest.stdout[-8000:] + ctest.stderr[-2000:]
    assert "100% tests passed" in ctest.stdout


@pytest.mark.lint
def test_cpp_is_clang_formatted() -> None:
    files = sorted(
        str(p)
        for d in ("core", "bindings", "benchmarks")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".cpp", ".hpp")
    )
    r = run([tool("clang-format"), "--dry-run", "-Werror", *files])
    assert r.returncode == 0, r.stderr[-4000:]


@pytest.mark.lint
def test_python_is_ruff_clean() -> None:
    paths = ["src", "tests", "benchmarks", "examples"]
    paths = [p for p in paths if (ROOT / p).exists()]
    check = run([tool("ruff"), "check", *paths])
    assert check.returncode == 0, check.stdout[-4000:]
    fmt = run([tool("ruff"), "format", "--check", *paths])
    assert fmt.returncode == 0, fmt.stdout[-4000:]


@pytest.mark.lint
def test_python_package_type_checks() -> None:
    # mypy reads the core's stub (_icm_core.pyi) and, with the finetune extra, torch's types.
    r = run([tool("mypy"), "src"])
    assert r.returncode == 0, r.stdout[-4000:]
