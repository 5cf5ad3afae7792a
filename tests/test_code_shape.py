"""The shape of the code in src/icm: no function longer than MAX_FUNCTION_LINES, so that a
function reads top to bottom as a few named steps."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "icm"
MAX_FUNCTION_LINES = 100  # from `def` to the last line of the body, decorators excluded

KNOWN_LONG: set[str] = set()  # functions allowed over the limit for now: none


def long_functions(root: Path, limit: int) -> list[str]:
    """`path:name (N lines, line L)` of every function or method under `root` longer than
    `limit` lines, nested functions included."""
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    where = f"{path.relative_to(root).as_posix()}:{node.name}"
                    out.append(f"{where} ({length} lines, line {node.lineno})")
    return out


def test_no_function_in_src_is_longer_than_the_limit() -> None:
    offenders = [
        f for f in long_functions(SRC, MAX_FUNCTION_LINES) if f.split(" ")[0] not in KNOWN_LONG
    ]
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n  "
        + "\n  ".join(offenders)
    )


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert long_functions(tmp_path, MAX_FUNCTION_LINES) == [
        f"long.py:long ({MAX_FUNCTION_LINES + 1} lines, line 5)"
    ]


ROOT = SRC.parents[1]
# Where a name defined in src/icm may be used: the package, its tests, benchmarks and
# examples (a notebook's entry points are in icm.api, which the tests call).
USERS = ("src/icm", "tests", "benchmarks", "examples")


def never_named(root: Path, users: list[str]) -> list[str]:
    """`path:name` of every function or class under `root` whose name appears nowhere in
    `users` (file texts) but at its own definition. A decorated class is used by its
    decorator (a testbed registers itself)."""
    words: dict[str, int] = {}
    for text in users:
        for word in re.findall(r"\b[A-Za-z_]\w*\b", text):
            words[word] = words.get(word, 0) + 1
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            if not isinstance(node, kinds) or node.name.startswith("__"):
                continue
            if isinstance(node, ast.ClassDef) and node.decorator_list:
                continue
            if words.get(node.name, 0) <= 1:
                out.append(f"{path.relative_to(root).as_posix()}:{node.name}")
    return out


def test_no_function_or_class_in_src_is_dead() -> None:
    """render_claim, check_columns, inspect_model_file, RunConfig.differences and
    read_gguf_metadata were defined and never called."""
    texts = [p.read_text(encoding="utf-8") for d in USERS for p in sorted((ROOT / d).rglob("*.py"))]
    dead = never_named(SRC, texts)
    assert not dead, "defined but never used:\n  " + "\n  ".join(dead)


def test_the_dead_code_check_finds_an_unused_function(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "def used():\n    pass\n\n\ndef unused():\n    used()\n", encoding="utf-8"
    )
    assert never_named(tmp_path, [(tmp_path / "m.py").read_text()]) == ["m.py:unused"]
