"""icm.config is imported by nearly every module, so it imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "icm"


def test_config_imports_nothing_above_it() -> None:
    """config.py is imported by nearly every module: importing run_summary, finetune or the
    testbeds from it (even lazily) made those a layer below it."""
    allowed = {"icm", "icm._icm_core", "icm.errors", "icm.option", "icm.finetune_config"}
    imported: set[str] = set()
    for node in ast.walk(ast.parse((SRC / "config.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert {m for m in imported if m.split(".")[0] == "icm"} <= allowed, imported
