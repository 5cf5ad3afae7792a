"""trace.png (icm.report.trace_plot): its panels, its title, and traces with extreme values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.figure
import pytest

from icm.report.trace_plot import plot_trace
from icm.run_dir import read_jsonl


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("plot") / "run"
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "run", "--model", "synthetic", "--testbed",
         "arithmetic", "--size", "20", "--K", "60", "--out", str(out), "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return read_jsonl(out / "trace.jsonl")


def plotted(monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> matplotlib.figure.Figure:
    """Plot, and return the figure as it was saved."""
    saved: list[matplotlib.figure.Figure] = []
    original = matplotlib.figure.Figure.savefig

    def keep(self: matplotlib.figure.Figure, *a: Any, **k: Any) -> None:
        saved.append(self)
        original(self, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    path = plot_trace(*args, **kwargs)
    assert path.stat().st_size > 10_000
    return saved[0]


def test_panels_title_and_chance_line(
    trace: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fig = plotted(
        monkeypatch, trace, tmp_path / "t.png", testbed="arithmetic", model="synthetic", n_claims=20
    )
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any(label.startswith("inconsistencies") for label in labels), labels
    assert fig.get_suptitle() == "arithmetic, model synthetic, N = 20 claims"
    gold_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("agreement with gold"))
    assert any("chance" in t.get_text() for t in gold_ax.texts)
    assert any(list(line.get_ydata()) == [50, 50] for line in gold_ax.lines)
    # The inconsistency panel draws the trace's own counts.
    inc_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("inconsistencies"))
    drawn = list(inc_ax.lines[0].get_ydata())
    assert drawn == [float(r["inconsistent"]) for r in trace]


def test_the_old_positional_call_still_works(trace: list[dict[str, Any]], tmp_path: Path) -> None:
    assert plot_trace(trace, tmp_path / "t.png", "a run").exists()


@pytest.mark.parametrize("temperature", [1e308, float("inf"), float("nan"), 0.0])
def test_extreme_temperatures_do_not_break_the_plot(
    trace: list[dict[str, Any]], tmp_path: Path, temperature: float
) -> None:
    # --initial_T 1e308 once crashed matplotlib's log axis (OverflowError).
    rows = [dict(r) for r in trace]
    rows[1]["temperature"] = temperature
    for r in rows[2:]:
        r["temperature"] *= 1e307
    assert plot_trace(rows, tmp_path / "t.png").stat().st_size > 10_000


def test_panels_follow_the_run_and_the_iteration_axis_is_logarithmic(
    trace: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No empty panel (a run without relations, or without gold), no panel that repeats
    the configuration (the temperature under --algorithm paper follows the iteration);
    alpha in the title; a log iteration axis (a K = 3000 run was a flat tail)."""
    full = plotted(
        monkeypatch, trace, tmp_path / "a.png", testbed="t", alpha=1.875, zero_shot_agreement=0.875
    )
    assert len(full.axes) == 5 and full.axes[-1].get_xscale() == "symlog"
    assert full.axes[-1].get_xlim()[0] == 0
    assert full.get_suptitle() == "t, alpha = 1.875"
    gold_ax = next(ax for ax in full.axes if ax.get_ylabel().startswith("agreement with gold"))
    assert any(t.get_text() == "zero-shot (87.5%)" for t in gold_ax.texts)
    without_gold = [{**r, "gold_agreement": None} for r in trace]
    monkeypatch.undo()
    lean = plotted(
        monkeypatch,
        without_gold,
        tmp_path / "b.png",
        has_constraints=False,
        show_temperature=False,
    )
    labels = [ax.get_ylabel() for ax in lean.axes]
    assert labels == ["U = alpha*MP - I", "accept rate (%)\nlast 50 proposals"], labels


def test_icm_run_describes_its_run_to_the_trace_plot(tmp_path: Path) -> None:
    """What icm run tells trace.png of a claims file without relations, under --algorithm
    paper: no inconsistency panel, no temperature panel, and the alpha it used."""
    claims = tmp_path / "c.jsonl"
    claims.write_text("".join(f'{{"id": "c{i}", "claim": "x{i}"}}\n' for i in range(6)))
    from icm.config import RunConfig
    from icm.run import load_run_table, trace_plot_labels

    cfg = RunConfig(testbed=str(claims), model="synthetic")
    labels = trace_plot_labels(cfg, load_run_table(cfg))
    assert labels["has_constraints"] is False and labels["show_temperature"] is False
    assert labels["alpha"] == 0.7031  # 30 * 6 / 256, rounded as run_summary does
