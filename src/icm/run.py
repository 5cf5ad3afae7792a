"""`icm run`: load a testbed, open a scorer, search, and write the run directory."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from icm import _icm_core as core
from icm.backends import check_model_options
from icm.backends.base import FloorWatch
from icm.backends.completions import redact_credentials
from icm.backends.registry import OpenModel, open_model
from icm.checkpoint import (
    STATE_FILE,
    TRACE_FILE,
    CheckpointWriter,
    check_progress,
    earlier_segments,
    load_progress,
    read_batches_without_state,
    sum_segments,
)
from icm.config import AUTO_PARALLEL_BATCHES, SYNTHETIC_MODEL, RunConfig, balanced_alpha
from icm.errors import ConfigError, DataError, IcmError
from icm.run_dir import (
    RunLog,
    default_run_dir,
    naming_path,
    now_iso,
    prepare_run_dir,
    read_finished_run,
    read_json_object,
    run_dir_lock,
    versions,
    write_json,
    write_jsonl,
)
from icm.run_summary import RunSummary, summarize_run
from icm.search import (
    BatchScorer,
    IcmResult,
    gold_agreement,
    plan_batches,
    relations_across_batches,
    run_icm,
    scorer_for_all,
)
from icm.search import Progress as SearchProgress
from icm.testbeds import LoadOptions
from icm.testbeds.base import ClaimTable
from icm.testbeds.loading import check_claims_file_split, load_table
from icm.zero_shot import zero_shot_gaps, zero_shot_labels

ZERO_SHOT_FILE = "zero_shot.json"

SYNTHETIC_WARNING = (
    "scorer: SYNTHETIC stand-in, not a language model. Its scores are a noisy function of "
    "the gold labels, so agreement with gold measures the search algorithm only."
)


def load_run_table(cfg: RunConfig) -> ClaimTable:
    options = LoadOptions(
        data_dir=Path(cfg.data_dir) if cfg.data_dir else None,
        size=None if cfg.test_fraction is not None else cfg.size,
        seed=cfg.seed,
        consistency=cfg.consistency,
    )
    table = load_table(cfg.testbed, cfg.split, options)
    if cfg.test_fraction is None:
        return table
    # The groups icm eval --test-fraction holds out are never labelled (nor seen).
    train, _ = table.split_groups(cfg.test_fraction, cfg.test_fraction_seed)
    return train.sample_groups(cfg.size, cfg.seed)


def claims_fingerprint(table: ClaimTable) -> str:
    """sha256 of what the search sees of a table (ids, prompts, groups, relations, group
    constraints, label words): config.json keeps it, and a resume checks it."""
    import hashlib

    data = [
        list(table.label_words),
        [[c.id, c.prompt, c.group] for c in table.claims],
        [[r.kind, r.a, r.b] for r in table.relations],
        [[g.kind, list(g.members)] for g in table.group_constraints],
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def load_checked_run_table(run_dir: Path, cfg: RunConfig) -> ClaimTable:
    """The run's table, refused if its claims differ from those the run started with (an
    edited claims file or data file): its labels would be written beside other prompts."""
    table = load_run_table(cfg)
    started = read_json_object(run_dir / "config.json").get("testbed")
    expected = started.get("claims_sha256") if isinstance(started, dict) else None
    if isinstance(expected, str) and expected != claims_fingerprint(table):
        raise ConfigError(
            f"--resume {run_dir}: the claims of --testbed {cfg.testbed} (split {cfg.split}) "
            "are not those the run started with (the file was edited or replaced: ids, "
            "prompts, groups or relations differ); restore it, or start a new run"
        )
    return table


class ScorerHandle:
    """The scorer for the search (or a per-batch factory) plus what to report about it."""

    def __init__(
        self,
        scorer: BatchScorer,
        description: str,
        backend: Any = None,
        floor_watch: FloorWatch | None = None,
    ) -> None:
        self.core = scorer
        self.description = description
        self.backend = backend
        self.floor_watch = floor_watch
        self.synthetic: list[core.SyntheticScorer] = []
        # Parts of the scoring path that say warnings (icm.backends.base.WarningSource).
        self.warning_sources: list[Any] = []

    def stats(self) -> dict[str, Any]:
        if self.backend is not None and hasattr(self.backend, "stats"):
            return dict(self.backend.stats.as_dict())
        if self.synthetic:
            return {"requests": sum(s.n_requests for s in self.synthetic)}
        return {}


def parallel_batches(cfg: RunConfig) -> int:
    """--parallel-batches, 0 resolved: batches at once against a model server (HTTP), one
    at a time for the synthetic stand-in, an in-process model and --iterative (whose
    scorer depends on the batches before)."""
    if cfg.iterative:
        return 1
    if cfg.parallel_batches:
        return cfg.parallel_batches
    in_process = not cfg.base_url and cfg.model_path and Path(cfg.model_path).expanduser().is_dir()
    return 1 if cfg.model == SYNTHETIC_MODEL or in_process else AUTO_PARALLEL_BATCHES


def check_synthetic_gold(table: ClaimTable) -> None:
    """The synthetic stand-in scores from gold labels: a claim without one is refused."""
    missing = [c.id for c in table.claims if c.gold is None]
    if missing:
        raise ConfigError(
            "--model synthetic: the synthetic stand-in needs gold labels for every claim; "
            f"{len(missing)} of {len(table)} have none (e.g. '{missing[0]}')"
        )


def synthetic_scorer_factory(table: ClaimTable, seed: int, handle: ScorerHandle) -> BatchScorer:
    check_synthetic_gold(table)
    gold = table.gold_labels()

    def for_batch(indices: list[int]) -> core.Scorer:
        truth = [core.Label.TRUE if gold[i] else core.Label.FALSE for i in indices]
        params = core.SyntheticScorerParams()
        params.seed = seed
        scorer = core.SyntheticScorer(truth, params)
        handle.synthetic.append(scorer)
        return scorer

    return for_batch


@contextlib.contextmanager
def run_model(cfg: RunConfig, model: OpenModel | None = None) -> Iterator[OpenModel | None]:
    """The model a run scores with: `model` when the caller opened it (icm replicate opens
    one for all its runs), else opened here through the registry. None for --iterative,
    whose models icm.iterative opens (through the registry too) batch by batch."""
    if model is not None or cfg.iterative:
        yield model
        return
    with open_model(cfg) as opened:
        yield opened


@contextlib.contextmanager
def open_scorer(
    model: OpenModel | None,
    cfg: RunConfig,
    table: ClaimTable,
    run_dir: Path | None = None,
    log: Any = print,
) -> Iterator[ScorerHandle]:
    """The search's scorer on `model` (see run_model) for this table's label words."""
    if cfg.model == SYNTHETIC_MODEL:
        handle = ScorerHandle(None, SYNTHETIC_WARNING)  # type: ignore[arg-type]
        handle.core = synthetic_scorer_factory(table, cfg.seed, handle)
        yield handle
        return
    from icm.backends.base import CoreScorer
    from icm.backends.response_cache import cache_wrapper

    if cfg.iterative:
        from icm.backends.transformers_scorer import require_finetune_extra
        from icm.iterative import IterativeFinetuning

        if run_dir is None:
            raise ConfigError("--iterative: needs a run directory for its models")
        require_finetune_extra()
        with cache_wrapper(cfg.cache) as cached:
            iterative = IterativeFinetuning(cfg, table, run_dir, log, cached)
            try:
                yield ScorerHandle(
                    iterative,
                    f"model: {cfg.model_path or cfg.model} in process (transformers), "
                    "fine-tuned on the labels of the batches before each batch (--iterative)",
                    iterative,
                )
            finally:
                iterative.close()
        return
    assert model is not None  # run_model opens one for every run but --iterative
    with cache_wrapper(cfg.cache) as cached, model.scorer(table.label_words) as backend:
        scorer = cached(backend)
        check_lengths = getattr(backend, "check_prompt_lengths", None)
        if check_lengths is not None:  # before the search: not a 400 hours into it
            check_lengths(longest_prompts(cfg, table))
        watch = FloorWatch(table.label_words, floor_hint(cfg))
        handle = ScorerHandle(
            CoreScorer(scorer, watch), f"model: {backend.model_id}", scorer, floor_watch=watch
        )
        handle.warning_sources = [backend, getattr(scorer, "cache", None)]
        yield handle


@contextlib.contextmanager
def scorer_before_run_dir(
    model: OpenModel | None, cfg: RunConfig, table: ClaimTable
) -> Iterator[ScorerHandle | None]:
    """The scorer of a new run, made and checked (the response cache opened, prompt
    lengths against the server's context) before its run directory exists, so that a run
    refused there leaves no directory behind. None for --iterative, whose models live in
    the run directory (execute_run opens its scorer)."""
    if cfg.iterative:
        yield None
        return
    with open_scorer(model, cfg, table) as handle:
        yield handle


def log_scoring_warnings(handle: ScorerHandle, log: RunLog) -> None:
    """Warnings said before the run's log existed (opening the cache, checking prompt
    lengths) into log.txt now, and those said while scoring as they come."""
    for warning in getattr(handle.backend, "warnings", []):
        log(f"warning: {warning}")
    note = RunLog(log.path.parent, echo=False)  # the scorer said it on stderr already
    for source in handle.warning_sources:
        if hasattr(source, "on_warning"):
            source.on_warning = lambda message: note(f"warning: {message}")


def longest_prompts(cfg: RunConfig, table: ClaimTable, n: int = 3) -> list[str]:
    """The `n` longest prompts (in characters) the search of this run can build, one per
    batch at most: a batch's longest is its longest claims as demonstrations (every other
    labelled claim with --mp exact, --context-k with sparse), each followed by the longer
    label word and the separator, then a claim (core/src/demonstration_prompt.cpp)."""
    word = max(table.label_words, key=len)
    separator = "\n\n"  # the core's demonstration separator (its default)
    candidates = []
    for batch in plan_batches(table, cfg.batch_size, cfg.seed):
        prompts = sorted((table.claims[i].prompt for i in batch), key=len, reverse=True)
        n_demos = len(prompts) - 1 if cfg.mp == "exact" else min(cfg.context_k, len(prompts) - 1)
        demos, target = prompts[1 : n_demos + 1], prompts[0]
        candidates.append("".join(d + word + separator for d in demos) + target)
    return sorted(candidates, key=len, reverse=True)[:n]


def floor_hint(cfg: RunConfig) -> str:
    """What to change when the label words are missing from the model's top logprobs."""
    hints = []
    if cfg.keep_trailing_space:
        by = ", set by --preset original" if cfg.preset == "original" else ""
        hints.append(
            f"prompts are sent ending in a space (--keep-trailing-space{by}), after which "
            "SentencePiece models (Gemma, Llama 2) predict a word-less token: add "
            "--no-keep-trailing-space"
        )
    hints.append(f"raise --logprobs (now {cfg.logprobs})")
    hints.append("check the label words of the testbed or claims file")
    hints.append("or use another model")
    return "; ".join(hints[:-1]) + ", " + hints[-1]


class ProgressBar:
    """A tqdm bar over all batches' iterations, with the numbers a researcher watches."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.moves: list[bool] = []
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="it", dynamic_ncols=True)

    def __call__(self, batch: int, n_batches: int, rec: dict[str, Any]) -> None:
        if rec["outcome"] in ("accepted", "rejected"):
            self.moves.append(rec["outcome"] == "accepted")
        if self.bar is None:
            return
        if rec["outcome"] != "init":
            self.bar.update(1)
        recent = self.moves[-50:]
        self.bar.set_postfix(
            batch=f"{batch + 1}/{n_batches}",
            accept=f"{100 * sum(recent) / len(recent):.0f}%" if recent else "-",
            U=f"{rec['utility']:.2f}",
            labeled=rec["n_labeled"],
            refresh=False,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def start_run(
    cfg: RunConfig,
    *,
    progress: bool = True,
    argv: list[str] | None = None,
    model: OpenModel | None = None,
) -> Path:
    """A new run: check everything and open the model (unless `model` is given, opened by
    the caller), then create its directory and config.json, then run it."""
    cfg.validate()
    check_claims_file_split(cfg.testbed, cfg.split)
    table = load_run_table(cfg)
    if len(table) == 0:
        raise ConfigError(f"--testbed {cfg.testbed}: split '{cfg.split}' has no claims")
    if cfg.model == SYNTHETIC_MODEL:  # before the run directory: a resume could not help
        check_synthetic_gold(table)
    check_model_options(cfg)  # the same: a model name without a server, a path that is no model
    # The model is opened (a server started, weights loaded) before the run directory
    # exists: a model that fails to open leaves no run behind to resume.
    # So are its scorer and the prompts' length checked against the server's context.
    with run_model(cfg, model) as opened, scorer_before_run_dir(opened, cfg, table) as handle:
        run_dir = prepare_run_dir(Path(cfg.out) if cfg.out else default_run_dir(cfg.testbed))
        # Held until the run ends: two runs writing one directory would corrupt both.
        with run_dir_lock(run_dir):
            if (run_dir / STATE_FILE).exists() or (run_dir / "config.json").exists():
                raise ConfigError(
                    f"--out: '{run_dir}' already holds a run; continue it with "
                    f"`icm run --resume {run_dir}` or choose another --out"
                )
            write_run_config(run_dir, cfg, table, argv)
            return execute_run(
                run_dir, cfg, table, opened, resume=None, progress=progress, handle=handle
            )


def write_run_config(
    run_dir: Path, cfg: RunConfig, table: ClaimTable, argv: list[str] | None
) -> None:
    """config.json: what a resume and the reports read of how the run was started."""
    params = cfg.search_params(cfg.batch_claims(len(table)))
    write_json(
        run_dir / "config.json",
        {
            # URLs without their user:password (a resume asks for --base-url again).
            "config": {
                **cfg.to_dict(),
                "base_url": [redact_credentials(u) for u in cfg.base_url],
            },
            "search_params": {
                k: str(getattr(params, k))
                for k in dir(params)
                if not k.startswith("_") and k != "validate"
            },
            "versions": versions(),
            "created": now_iso(),
            "argv": None if argv is None else [redact_credentials(a) for a in argv],
            "testbed": {
                "name": table.testbed,
                "split": table.split,
                "n_claims": len(table),
                "n_relations": len(table.relations),
                "label_words": list(table.label_words),
                "notes": table.notes,
                "structure_uses_gold": table.structure_uses_gold,
                "claims_sha256": claims_fingerprint(table),
            },
        },
    )


def resume_run(
    run_dir: Path,
    overrides: dict[str, Any],
    *,
    progress: bool = True,
    model: OpenModel | None = None,
) -> Path:
    """Continue a stopped run exactly where its last checkpoint left it (on `model` when
    the caller opened it; a completed run needs none)."""
    cfg = RunConfig.load(run_dir / "config.json")
    changed = sorted(
        k
        for k, v in overrides.items()
        if getattr(cfg, k) != v and k not in RunConfig.OPERATIONAL_FIELDS
    )
    for k in RunConfig.OPERATIONAL_FIELDS & set(overrides):
        setattr(cfg, k, overrides[k])
    if changed:

        def shown(value: Any) -> str:  # None is the default of alpha and log_beta
            return "default" if value is None else repr(value)

        detail = ", ".join(
            f"{k} (run: {shown(getattr(cfg, k))}, given: {shown(overrides[k])})" for k in changed
        )
        raise ConfigError(f"--resume {run_dir}: the configuration differs in {detail}")
    cfg.validate()  # a hand-edited config.json gets the same checks as the flags
    prepare_run_dir(run_dir, flag="--resume")
    with run_dir_lock(run_dir):  # until the run ends; load_progress already rewrites files
        metrics_path = run_dir / "metrics.json"
        if metrics_path.exists():
            status = read_json_object(metrics_path).get("status")
            if status == "completed":
                repaired = repair_outputs(run_dir, cfg)
                done = (
                    f"rebuilt {', '.join(repaired)} from its checkpoint"
                    if repaired
                    else "its outputs match its checkpoint; nothing to do"
                )
                print(f"icm: {run_dir} is already complete; {done}", file=sys.stderr)
                return run_dir
        saved = load_progress(run_dir)
        table = load_checked_run_table(run_dir, cfg)
        if saved is not None:
            batches = plan_batches(table, cfg.batch_size, cfg.seed)
            check_progress(saved, batches, table.ids, cfg.K, run_dir)
        with run_model(cfg, model) as opened:
            return execute_run(run_dir, cfg, table, opened, resume=saved, progress=progress)


def repair_outputs(run_dir: Path, cfg: RunConfig) -> list[str]:
    """Check the outputs of a completed run against its checkpoint (batches.jsonl, the
    finished batches) and rewrite those that are missing or differ: a run killed between
    writing metrics.json and labels.jsonl, or a labels.jsonl cut short or edited, would
    otherwise stay wrong for good. Returns the names of the files rewritten.

    Without state.json the finished batches are read from batches.jsonl alone (a completed
    run has finished them all); without either, damaged labels cannot be rebuilt, and the
    error says they are lost (`icm export` would otherwise send the user back here)."""
    saved = load_progress(run_dir)
    completed = saved.completed if saved is not None else read_batches_without_state(run_dir)
    if completed is None:
        try:
            read_finished_run(run_dir)
        except DataError as e:
            raise ConfigError(
                f"{e}; its checkpoint (state.json, batches.jsonl) is gone, so labels.jsonl "
                "cannot be rebuilt: the labels are lost; start the run again"
            ) from None
        return []
    table = load_checked_run_table(run_dir, cfg)
    result = IcmResult(completed)
    labelled = set(result.labels)
    missing = [c.id for c in table.claims if c.id not in labelled]
    if missing:
        raise ConfigError(
            f"{run_dir}: metrics.json says completed, but batches.jsonl has no label for "
            f"{len(missing)} claim(s) (e.g. '{missing[0]}'); delete metrics.json and resume "
            "to finish the run"
        )
    zs_gaps = read_zero_shot(run_dir, table)
    repaired = []
    if rebuild_trace_plot(run_dir, cfg, table):
        repaired.append("trace.png")
    if rebuild_labels(run_dir, table, result, zs_gaps):
        repaired.insert(0, "labels.jsonl")
    if refigure_against_gold(run_dir, cfg, table, result, zs_gaps):
        repaired.append("metrics.json (figures against gold: the gold labels changed)")
    return repaired


def rebuild_trace_plot(run_dir: Path, cfg: RunConfig, table: ClaimTable) -> bool:
    """Draw a missing trace.png from trace.jsonl; whether it was drawn."""
    trace_path, plot_path = run_dir / TRACE_FILE, run_dir / "trace.png"
    if plot_path.exists() or not trace_path.exists():
        return False
    from icm.report.trace_plot import plot_trace
    from icm.run_dir import read_jsonl

    plot_trace(read_jsonl(trace_path), plot_path, **trace_plot_labels(cfg, table))
    return True


def rebuild_labels(
    run_dir: Path, table: ClaimTable, result: IcmResult, zs_gaps: dict[str, float] | None
) -> bool:
    """Rewrite labels.jsonl if it is missing, unreadable or not what the checkpoint's
    batches give; whether it was rewritten."""
    expected = [json.loads(json.dumps(r, default=str)) for r in label_rows(table, result, zs_gaps)]
    labels_path = run_dir / "labels.jsonl"
    try:
        found = [json.loads(line) for line in labels_path.read_text().splitlines() if line]
    except (OSError, ValueError):
        found = None
    if found == expected:
        return False
    write_labels(run_dir, table, result, zs_gaps)
    why = "missing or unreadable" if found is None else "different from batches.jsonl"
    RunLog(run_dir, echo=False)(f"labels.jsonl was {why}: rebuilt from batches.jsonl")
    return True


def refigure_against_gold(
    run_dir: Path,
    cfg: RunConfig,
    table: ClaimTable,
    result: IcmResult,
    zs_gaps: dict[str, float] | None,
) -> bool:
    """Gold labels are no part of the claims' fingerprint (the search never sees them): an
    edited gold rewrites labels.jsonl's gold column, and metrics.json's figures read
    against gold (the agreement, and ICM against zero-shot with the verdict). Whether
    metrics.json was rewritten."""
    metrics_path = run_dir / "metrics.json"
    figures = read_json_object(metrics_path)
    labels, gold = result.labels, {c.id: c.gold for c in table.claims}
    agreement = gold_agreement([labels[i] for i in labels], [gold[i] for i in labels])
    if "agreement_with_gold" not in figures or figures["agreement_with_gold"] == agreement:
        return False
    RunLog(run_dir, echo=False)(
        f"the gold labels differ from those the run was measured with: "
        f"agreement_with_gold {figures['agreement_with_gold']} -> {agreement}"
    )
    updated = {**figures, "agreement_with_gold": agreement}
    old_summary = figures.get("summary")
    if isinstance(old_summary, dict):
        summary = summarize_run(
            cfg,
            table,
            result,
            cfg.batch_claims(len(table)),
            zero_shot_gaps=zs_gaps,
            floored=old_summary.get("floored"),
        )
        scorer_warnings = [
            w for w in figures.get("warnings") or [] if w not in old_summary["warnings"]
        ]
        updated.update(
            summary=summary.as_dict(),
            verdict=summary.verdict,
            warnings=[*summary.warnings, *scorer_warnings],
            zero_shot=summary.as_dict()["zero_shot"],
        )
    write_json(metrics_path, updated)
    return True


class Execution:
    """One execution of a run (its start or a resume), as metrics.json reports it."""

    def __init__(self, run_dir: Path) -> None:
        self.started = time.monotonic()
        self.segment_started = now_iso()
        # Costs add up over the executions of a run: a resumed run reports all it took.
        # A resume without a checkpoint (the run failed before its first) still adds to
        # the costs its failed executions left in metrics.json; a fresh directory has none.
        self.earlier = earlier_segments(run_dir)
        self.status = "failed"
        self.error: str | None = None
        self.resumable = True
        self.handle: ScorerHandle | None = None
        self.result: IcmResult | None = None
        self.zs_gaps: dict[str, float] | None = None
        self.bar = ProgressBar(total=0, enabled=False)

    def segments(self, segment_status: str = "running") -> list[dict[str, Any]]:
        return [
            *self.earlier,
            {
                "started": self.segment_started,
                "status": segment_status,
                "wall_seconds": round(time.monotonic() - self.started, 3),
                "backend": self.handle.stats() if self.handle is not None else {},
            },
        ]


def execute_run(
    run_dir: Path,
    cfg: RunConfig,
    table: ClaimTable,
    model: OpenModel | None,
    *,
    resume: SearchProgress | None,
    progress: bool,
    handle: ScorerHandle | None = None,
) -> Path:
    """Search (from `resume`, or from the start), then write the run's outputs: those of a
    failed or interrupted search too, with how to continue it. `handle`: the scorer, when
    it was opened before the run directory (scorer_before_run_dir), else opened here."""
    log = RunLog(run_dir, echo=progress)
    log_start(log, cfg, table, resume)
    trace_path = run_dir / TRACE_FILE
    if resume is None:
        trace_path.unlink(missing_ok=True)
    run = Execution(run_dir)
    try:
        with (
            (
                contextlib.nullcontext(handle)
                if handle is not None
                else open_scorer(model, cfg, table, run_dir, log)
            ) as run.handle,
            trace_path.open("a", encoding="utf-8") as trace_file,
        ):
            search_run(run, run_dir, cfg, table, resume, log, trace_file, progress)
            run.status = "completed"
    except KeyboardInterrupt:
        run.status = "interrupted"
        raise
    except IcmError as e:
        run.error = str(e)
        run.resumable = getattr(e, "resumable", True)
        raise
    finally:
        run.bar.close()
        finish_run(run, run_dir, cfg, table, log, progress)
    return run_dir


def log_start(
    log: RunLog, cfg: RunConfig, table: ClaimTable, resume: SearchProgress | None
) -> None:
    """What log.txt says first: the run and its caveats, or where a resume goes on."""
    if resume is not None:
        log(
            f"resuming: {len(resume.completed)} batch(es) done, batch {resume.batch} at "
            f"iteration {resume.state.iteration if resume.state else 0}"
        )
        return
    log(
        f"icm run: {table.testbed}/{table.split}, {len(table)} claims, "
        f"{len(table.relations)} relations"
    )
    for note in table.notes:
        log(f"note: {note}")
    if table.structure_uses_gold:
        log(
            "WARNING: the consistency relations of this run were derived from GOLD labels "
            "(--consistency paper); its labels are not unsupervised."
        )
    if cfg.mp_objective == "mean-gap":
        log(alpha_note(cfg, cfg.batch_claims(len(table))))


def search_run(
    run: Execution,
    run_dir: Path,
    cfg: RunConfig,
    table: ClaimTable,
    resume: SearchProgress | None,
    log: RunLog,
    trace_file: IO[str],
    progress: bool,
) -> None:
    """The zero-shot reference, then the search, with its trace, progress bar and
    checkpoints; sets run.zs_gaps and run.result."""
    handle = run.handle
    assert handle is not None
    log(handle.description)
    log_scoring_warnings(handle, log)
    n_batches = len(plan_batches(table, cfg.batch_size, cfg.seed))
    warn_dropped_relations(log, cfg, table)
    run.zs_gaps = zero_shot_reference(cfg, table, handle, run_dir, log)
    initial = None
    if cfg.init == "zero-shot":
        assert run.zs_gaps is not None  # validate() refuses --init zero-shot without it
        initial = zero_shot_labels(table, run.zs_gaps).labels
    run.bar = bar = ProgressBar(total=n_batches * cfg.K, enabled=progress)
    if resume is not None and bar.bar is not None:
        bar.bar.update(resume.n_trace_rows - len(resume.completed) - (resume.batch is not None))
    trace_path = run_dir / TRACE_FILE

    def on_step(batch: int, n: int, rec: dict[str, Any]) -> None:
        # Flushed for readers (tail -f) but fsynced only by a checkpoint: an fsync
        # every step made a fast search 20x slower.
        with naming_path(trace_path):  # a full disk names the file
            trace_file.write(json.dumps(rec) + "\n")
            trace_file.flush()
        bar(batch, n, rec)

    checkpoint = CheckpointWriter(
        run_dir, run.segments, trace_file=trace_file, every_seconds=cfg.checkpoint_every
    )
    try:
        run.result = run_icm(
            table,
            handle.core,
            cfg.search_params(cfg.batch_claims(len(table))),
            cfg.batch_size,
            on_step=on_step,
            resume=resume,
            on_progress=checkpoint,
            initial_labels=initial,
            parallel_batches=parallel_batches(cfg),
        )
    finally:  # interrupted or failed: keep every step finished so far
        checkpoint.flush()


def warn_dropped_relations(log: RunLog, cfg: RunConfig, table: ClaimTable) -> None:
    """Relations between claims of different batches are said, and counted in
    metrics.json, never dropped silently."""
    dropped = relations_across_batches(table, plan_batches(table, cfg.batch_size, cfg.seed))
    if dropped:
        log(
            f"warning: {dropped} of {len(table.relations) + len(table.group_constraints)}"
            " relations join claims of different batches (their groups together "
            f"exceed --batch_size {cfg.batch_size}); the search cannot enforce them"
        )


def finish_run(
    run: Execution, run_dir: Path, cfg: RunConfig, table: ClaimTable, log: RunLog, progress: bool
) -> None:
    """metrics.json, and for a finished search labels.jsonl, trace.png and its summary;
    else how to continue (if a resume can help)."""
    watch = run.handle.floor_watch if run.handle is not None else None
    summary = None
    if run.result is not None:
        summary = summarize_run(
            cfg,
            table,
            run.result,
            cfg.batch_claims(len(table)),
            zero_shot_gaps=run.zs_gaps,
            floored=watch.line() if watch is not None else None,
        )
    write_json(
        run_dir / "metrics.json",
        metrics(
            cfg,
            table,
            run.result,
            run.handle,
            run.status,
            run.segments(run.status),
            run.error,
            summary,
        ),
    )
    if run.result is None:
        # Quiet runs still say how it ended; a resume is offered where it can help (the
        # same run would fail the same way otherwise).
        hint = f"{run.status}: {run_dir}"
        if run.resumable:
            hint += f"; continue with: icm run --resume {run_dir}"
        log(hint)
        if not progress:
            print(f"icm: {hint}", file=sys.stderr)
        return
    assert summary is not None
    write_finished_outputs(run_dir, cfg, table, run.result, run.zs_gaps, summary)
    # The summary is said even by quiet runs: a degenerate result must not pass as a
    # plain "completed".
    for line in summary.lines():
        log(line)
        if not progress:
            print(f"icm: {line}", file=sys.stderr)
    verdict = "" if summary.verdict == "ok" else f" ({summary.verdict}, see WARNING)"
    log(f"{run.status}{verdict}: {run_dir}")


def write_finished_outputs(
    run_dir: Path,
    cfg: RunConfig,
    table: ClaimTable,
    result: IcmResult,
    zs_gaps: dict[str, float] | None,
    summary: RunSummary,
) -> None:
    """labels.jsonl and trace.png of a finished search."""
    from icm.report.trace_plot import plot_trace
    from icm.run_dir import read_jsonl

    write_labels(run_dir, table, result, zs_gaps)
    plot_trace(
        read_jsonl(run_dir / TRACE_FILE),
        run_dir / "trace.png",
        **trace_plot_labels(cfg, table, summary),
    )


def trace_plot_labels(
    cfg: RunConfig, table: ClaimTable, summary: RunSummary | None = None
) -> dict[str, Any]:
    """What trace.png says of the run beside its trace (icm.report.trace_plot)."""
    reference = summary.zero_shot.claims if summary and summary.zero_shot else None
    return {
        "zero_shot_agreement": reference.zero_shot / reference.n if reference else None,
        "testbed": table.testbed,
        "model": cfg.model_path or cfg.model,
        "n_claims": len(table),
        "alpha": cfg.resolved_alpha(cfg.batch_claims(len(table))),
        "has_constraints": bool(table.relations or table.group_constraints),
        # Under --algorithm paper T follows the iteration: the panel would repeat the config.
        "show_temperature": cfg.algorithm == "code",
    }


def read_zero_shot(run_dir: Path, table: ClaimTable) -> dict[str, float] | None:
    """The zero-shot gaps an earlier execution of the run saved, if they cover the table."""
    path = run_dir / ZERO_SHOT_FILE
    if not path.exists():
        return None
    gaps = read_json_object(path).get("gaps")
    if not isinstance(gaps, dict) or set(gaps) != set(table.ids):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in gaps.values()):
        return None
    return {k: float(v) for k, v in gaps.items()}


def zero_shot_reference(
    cfg: RunConfig, table: ClaimTable, handle: ScorerHandle, run_dir: Path, log: Any
) -> dict[str, float] | None:
    """Score every claim alone (icm.zero_shot), once per run: the gaps are kept in
    zero_shot.json, and a resume reads them back. None when skipped."""
    if not cfg.zero_shot:
        return None
    saved = read_zero_shot(run_dir, table)
    if saved is not None:
        return saved
    scorer = scorer_for_all(handle.core, len(table))
    if scorer is None:
        log("zero-shot reference: skipped (--iterative changes the model between batches)")
        return None
    before = handle.stats()
    started = time.monotonic()
    gaps = zero_shot_gaps(scorer, table)
    if handle.floor_watch is not None:
        handle.floor_watch.check()  # a table of fewer claims than the watch waits for
    after = handle.stats()
    requests = after.get("requests", 0) - before.get("requests", 0)
    hits = after.get("cache_hits", 0) - before.get("cache_hits", 0)
    write_json(
        run_dir / ZERO_SHOT_FILE,
        {"gaps": gaps, "requests": requests, "cache_hits": hits, "created": now_iso()},
    )
    log(
        f"zero-shot reference: {len(table)} claims scored alone ({requests} requests, "
        f"{hits} from the response cache) in {time.monotonic() - started:.1f}s"
    )
    return gaps


def alpha_note(cfg: RunConfig, n_batch: int) -> str:
    """How alpha weighs one claim's MP term against one inconsistency in this run."""
    alpha = cfg.resolved_alpha(n_batch)
    weight = f"one claim weighs alpha/N = {alpha / n_batch:.3f} against one inconsistency"
    if cfg.alpha is None:
        return (
            f"alpha {alpha:g} = 30 * {n_batch} / 256: {weight}, as in the paper's batches of "
            "256 claims with alpha 30 (--alpha 30 for the original code's value)"
        )
    balanced = balanced_alpha(n_batch)
    if cfg.alpha > 1.5 * balanced:
        return (
            f"note: alpha {alpha:g} on batches of {n_batch} claims: {weight} (alpha 30 on "
            f"the original's batches of 256: 0.117), so MP outweighs consistency; --alpha "
            f"{balanced:g} keeps that balance (docs/algorithm.md)"
        )
    return (
        f"alpha {alpha:g} on batches of {n_batch} claims: {weight} (alpha 30 on the "
        "original's batches of 256: 0.117)"
    )


def write_labels(
    run_dir: Path, table: ClaimTable, result: IcmResult, zs_gaps: dict[str, float] | None
) -> None:
    write_jsonl(run_dir / "labels.jsonl", label_rows(table, result, zs_gaps))


def label_rows(
    table: ClaimTable, result: IcmResult, zs_gaps: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """The rows of labels.jsonl, one per claim of the table; with the zero-shot gaps, each
    row also has the claim's zero-shot gap and label (the reference, icm.zero_shot)."""
    labels, scores = result.labels, result.scores
    batch_of = {cid: b.batch for b in result.batches for cid in b.claim_ids}
    zs_labels = (
        zero_shot_labels(table, zs_gaps, match_labels=labels).labels if zs_gaps is not None else {}
    )
    rows = []
    for c in table.claims:
        row: dict[str, Any] = {
            "id": c.id,
            "label": labels.get(c.id),
            "score": scores.get(c.id),
            "group": c.group,
            "batch": batch_of.get(c.id),
        }
        if zs_gaps is not None:
            row["zero_shot_gap"] = zs_gaps[c.id]
            row["zero_shot_label"] = zs_labels[c.id]
        if c.gold is not None:
            row["gold"] = c.gold
        row["prompt"] = c.prompt
        if c.fields:  # source metadata (reports, exports); never read by the search
            row["fields"] = dict(c.fields)
        rows.append(row)
    return rows


def metrics(
    cfg: RunConfig,
    table: ClaimTable,
    result: IcmResult | None,
    handle: ScorerHandle | None,
    status: str,
    segments: list[dict[str, Any]],
    error: str | None = None,
    summary: RunSummary | None = None,
) -> dict[str, Any]:
    """The run's figures; time and backend counts are totals over its executions (the
    first start and each resume), listed one by one in "segments"."""
    wall_seconds, backend = sum_segments(segments)
    out: dict[str, Any] = {
        "status": status,
        "error": None if error is None else redact_credentials(error),
        "testbed": table.testbed,
        "split": table.split,
        "n_claims": len(table),
        # The weights given by --model-path, else --model ("embedded" alone said nothing of
        # a fine-tuned folder that scored the run); "scorer" names the exact model id.
        "model": cfg.model_path or cfg.model,
        "scorer": handle.description if handle else None,
        "wall_seconds": wall_seconds,
        "versions": versions(),
        "created": now_iso(),
    }
    if result is not None:
        out.update(search_figures(cfg, table, result))
    # The backend's warnings (no prompt-token details, an endpoint dropped, a cache that
    # cannot store) after the summary's: readers take the first as the run's verdict.
    scorer_warnings = list(getattr(handle.backend, "warnings", [])) if handle else []
    if summary is not None:
        out["summary"] = summary.as_dict()
        out["verdict"] = summary.verdict
    if summary is not None or scorer_warnings:
        out["warnings"] = [*(summary.warnings if summary else []), *scorer_warnings]
    if summary is not None:
        out["zero_shot"] = out["summary"]["zero_shot"]
    if handle is not None and handle.floor_watch is not None:
        out["floored_scores"] = handle.floor_watch.as_dict()
    out["segments"] = segments
    if handle is not None or backend:
        out["backend"] = backend
    if handle is not None:
        records = getattr(handle.backend, "records", None)
        if records is not None:  # --iterative: which model labelled which batch
            out["iterative"] = records
    return out


def search_figures(cfg: RunConfig, table: ClaimTable, result: IcmResult) -> dict[str, Any]:
    """metrics.json's figures of a finished search."""
    labels = result.labels
    gold = {c.id: c.gold for c in table.claims}
    index_of = {c.id: i for i, c in enumerate(table.claims)}
    ids = list(labels)
    return {
        "n_labeled": sum(v is not None for v in labels.values()),
        "n_batches": len(result.batches),
        "agreement_with_gold": gold_agreement([labels[i] for i in ids], [gold[i] for i in ids]),
        "inconsistencies": sum(b.inconsistencies for b in result.batches),
        "relations_dropped_across_batches": relations_across_batches(
            table, [[index_of[cid] for cid in b.claim_ids] for b in result.batches]
        ),
        "utility_per_batch": [b.utility for b in result.batches],
        "mp_per_batch": [b.mp for b in result.batches],
        "search_requests": sum(b.n_requests for b in result.batches),
        "search_cache_hits": sum(b.n_cache_hits for b in result.batches),
        # Scorer calls (rounds), and --prefetch-depth's speculative requests: sent,
        # and never needed (the waste). Since each batch's last start or resume.
        "search_rounds": sum(b.n_rounds for b in result.batches),
        "prefetched_requests": sum(b.n_prefetched for b in result.batches),
        "prefetched_unused": sum(b.n_prefetched - b.n_prefetched_used for b in result.batches),
        "alpha": cfg.resolved_alpha(cfg.batch_claims(len(table))),
    }
