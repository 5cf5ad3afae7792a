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
    # The benchmarks and examples too: a benchmark called a RunConfig method removed from
    # src, which only its own test run (a model test) found.
    r = run([tool("mypy"), "src", "benchmarks", "examples"])
    assert r.returncode == 0, r.stdout[-4000:]


STATE_AFTER_NUMPY = """
import importlib.util, sys
import numpy  # a C++ extension that loads the shared libstdc++ first
spec = importlib.util.spec_from_file_location("icm._icm_core", sys.argv[1])
core = importlib.util.module_from_spec(spec)
spec.loader.exec_module(core)
claims = [core.Claim(f"c{i}", f"Claim {i} is ", f"g{i // 2}") for i in range(4)]
s = core.ClaimSet(claims, [core.Relation(core.RelationKind.OPPOSITE, 0, 1)])
p = core.search_params_paper()
p.max_iterations = 5
scorer = core.SyntheticScorer([core.Label.TRUE, core.Label.FALSE] * 2, core.SyntheticScorerParams())
search = core.Search(s, p, scorer)
search.step()
print(len(search.state().rng_state))
"""


@pytest.mark.slow  # builds the extension from scratch
def test_an_extension_linked_with_a_static_libstdcxx_keeps_it_private(tmp_path: Path) -> None:
    """A toolchain that links libstdc++ statically (a GPU machine's /opt/gcc did) put an
    exported copy of it in the module: its locale facet ids (GNU-unique symbols) merged with
    the shared libstdc++ that numpy loads, and Search.state() crashed (SIGSEGV in
    RandomStream::save) in every `icm run`. The link now keeps that copy private."""
    import nanobind

    build = tmp_path / "build"
    configure = run(
        [
            tool("cmake"), "-S", ".", "-B", str(build), "-G", "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}", "-DCMAKE_BUILD_TYPE=Release",
            "-DSKBUILD=ON", "-DICM_BUILD_TESTS=OFF", f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dnanobind_ROOT={nanobind.cmake_dir()}",
            "-DCMAKE_MODULE_LINKER_FLAGS=-static-libstdc++",
        ]
    )  # fmt: skip
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    made = run([tool("cmake"), "--build", str(build), "--target", "_icm_core", "--parallel", "2"])
    assert made.returncode == 0, made.stdout[-5000:] + made.stderr[-5000:]
    module = next(build.glob("_icm_core*.so"))
    ldd = run(["ldd", str(module)])
    assert "libstdc++" not in ldd.stdout, ldd.stdout  # the copy is inside, as on that machine
    exported = run(["nm", "-D", "--defined-only", str(module)]).stdout
    assert "PyInit__icm_core" in exported
    leaked = [line for line in exported.splitlines() if "_ZNSt6locale" in line or " u " in line]
    assert len(leaked) <= 2, leaked[:20]  # before: 108 unique symbols, the locale's among them
    assert not any("_ZNSt6locale" in line for line in leaked), leaked
    r = subprocess.run(
        [sys.executable, "-c", STATE_AFTER_NUMPY, str(module)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and int(r.stdout) > 1000, (r.returncode, r.stderr[-3000:])
