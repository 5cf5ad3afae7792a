"""The shape of the code in src/icm: no function longer than MAX_FUNCTION_LINES, so that a
function reads top to bottom as a few named steps."""

from __future__ import annotations

import ast
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
