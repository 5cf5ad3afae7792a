"""Analyses of a finished run (`icm analyze RUN_DIR`), for testbeds judged by more than
agreement with gold labels. Today: DailyDilemmas, which has no gold answer.

An analysis reads RUN_DIR/config.json (which testbed, split and data directory) and
RUN_DIR/labels.jsonl (ICM's labels), reloads the testbed to get each claim's source
fields, and writes RUN_DIR/analysis.md and RUN_DIR/analysis.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icm.errors import ConfigError, DataError
from icm.run_dir import FinishedRun, read_finished_run

ANALYZED_TESTBEDS = ("daily-dilemmas",)


def run_data_dir(run: FinishedRun, data_dir: Path | None) -> Path | None:
    """The data directory to reload the run's testbed from: `data_dir`, else the run's own."""
    own = run.settings.get("data_dir")
    return data_dir if data_dir is not None else (Path(own) if own else None)


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
    run = read_finished_run(run_dir, need="a finished icm run directory")
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

    table = get_testbed(run.testbed).load(
        run.split, LoadOptions(data_dir=run_data_dir(run, data_dir))
    )
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
        **({"warning": w} if (w := run.quality_warning()) else {}),
        **result,
    }
    markdown = render_markdown(result)
    if write:
        from icm.run_dir import atomic_write_text, write_json

        write_json(run_dir / "analysis.json", result)
        atomic_write_text(run_dir / "analysis.md", markdown)
    return result, markdown
