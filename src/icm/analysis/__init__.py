"""Analyses of a finished run (`icm analyze RUN_DIR`), for testbeds judged by more than
agreement with gold labels. Today: DailyDilemmas, which has no gold answer.

An analysis reads RUN_DIR/config.json (which testbed, split and data directory) and
RUN_DIR/labels.jsonl (ICM's labels), reloads the testbed to get each claim's source
fields, and writes RUN_DIR/analysis.md and RUN_DIR/analysis.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icm.errors import ConfigError, DataError

ANALYZED_TESTBEDS = ("daily-dilemmas",)


@dataclass
class RunLabels:
    run_dir: Path
    testbed: str
    split: str
    data_dir: Path | None
    model: str | None
    labels: dict[str, bool | None]


def read_run(run_dir: Path, *, data_dir: Path | None = None) -> RunLabels:
    """config.json and labels.jsonl of a run; `data_dir` overrides the run's own."""
    from icm.run_dir import read_jsonl

    config_path = run_dir / "config.json"
    labels_path = run_dir / "labels.jsonl"
    for path in (config_path, labels_path):
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no {path.name} (is this a finished icm run directory?)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=config_path, line=e.lineno) from None
    cfg = config.get("config") if isinstance(config, dict) else None
    if not isinstance(cfg, dict):
        raise DataError("missing", path=config_path, field="config")
    for key in ("testbed", "split"):
        if not isinstance(cfg.get(key), str):
            raise DataError("missing or not a string", path=config_path, field=f"config.{key}")
    labels: dict[str, bool | None] = {}
    for n, row in enumerate(read_jsonl(labels_path), start=1):
        cid, label = row.get("id"), row.get("label", "missing")
        if not isinstance(cid, str) or not cid:
            raise DataError("missing or empty", path=labels_path, line=n, field="id")
        if label is not None and not isinstance(label, bool):
            raise DataError(
                f"expected true, false or null, got {label!r}",
                path=labels_path,
                line=n,
                field="label",
            )
        if cid in labels:
            raise DataError(f"claim '{cid}' appears twice", path=labels_path, line=n, field="id")
        labels[cid] = label
    own = cfg.get("data_dir")
    return RunLabels(
        run_dir=run_dir,
        testbed=cfg["testbed"],
        split=cfg["split"],
        data_dir=data_dir if data_dir is not None else (Path(own) if own else None),
        model=cfg.get("model"),
        labels=labels,
    )


def analyze_run(
    run_dir: Path,
    *,
    data_dir: Path | None = None,
    alpha: float = 0.05,
    min_discordant: int = 6,
    write: bool = True,
) -> tuple[dict[str, Any], str]:
    """Analyse a run; returns the JSON result and the markdown report (also written to
    RUN_DIR/analysis.json and RUN_DIR/analysis.md when `write`)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha: must be between 0 and 1, got {alpha}")
    if min_discordant < 1:
        raise ConfigError(f"--min-discordant: must be >= 1, got {min_discordant}")
    run = read_run(run_dir, data_dir=data_dir)
    if run.testbed not in ANALYZED_TESTBEDS:
        raise ConfigError(
            f"icm analyze: no analysis for testbed '{run.testbed}' (available: "
            f"{', '.join(ANALYZED_TESTBEDS)}); gold-labelled testbeds are scored by `icm eval`"
        )
    from icm.analysis.daily_dilemmas import (
        analyze_decisions,
        decisions_from_labels,
        render_markdown,
    )
    from icm.testbeds import LoadOptions, get_testbed

    table = get_testbed(run.testbed).load(run.split, LoadOptions(data_dir=run.data_dir))
    known = {c.id for c in table.claims}
    unknown = [cid for cid in run.labels if cid not in known]
    if unknown:
        raise DataError(
            f"{len(unknown)} claim ids are not in {run.testbed}/{run.split} as loaded now "
            f"(first: '{unknown[0]}'): different data or testbed version?",
            path=run_dir / "labels.jsonl",
            field="id",
        )
    claims = [c for c in table.claims if c.id in run.labels]
    decisions, skipped = decisions_from_labels(claims, run.labels)
    result = analyze_decisions(decisions, alpha=alpha, min_discordant=min_discordant)
    result = {
        "run_dir": str(run_dir),
        "testbed": run.testbed,
        "split": run.split,
        "model": run.model,
        "claims": len(run.labels),
        "skipped": skipped,
        **result,
    }
    markdown = render_markdown(result)
    if write:
        from icm.run_dir import atomic_write_text, write_json

        write_json(run_dir / "analysis.json", result)
        atomic_write_text(run_dir / "analysis.md", markdown)
    return result, markdown
