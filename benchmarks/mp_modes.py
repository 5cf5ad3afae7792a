"""mp_modes: exact vs sparse mutual predictability, side by side in one run.

Part 1, the real model (the embedded llama.cpp server): for each seed, the same ICM search
on a built-in testbed with `--mp exact` (every labeled claim in context: the original) and
`--mp sparse` (a fixed random context of --context-k claims), the response cache off so
that every prompt token is really computed. Prompt tokens, requests, wall time and final
agreement with gold, per mode, mean over seeds, and the ratios.

Part 2, model-free, at the paper's scale: the same comparison with the synthetic scorer on
batches of 256 claims, counting prompt length in claims (demonstrations + target) per
request, a proxy of prompt tokens that needs no model. Exact mode at 256 claims is out of
reach of this CPU with a real model; this part shows how the ratio grows with N.

    uv run python benchmarks/mp_modes.py [--seeds 3] [--size 12] [--K 150] [--alpha 30]
        [--context-k 4 | 3,4] [--model-path GGUF_OR_FOLDER] [--work DIR] [--skip-model]

With --work DIR the model runs are run directories in DIR: the same command again reuses
the finished ones and resumes the stopped ones (long exact runs survive a kill).

Goal (issue 7): sparse uses >= 20x fewer prompt tokens than exact with final accuracy
within 2 points (mean of seeds). Figures are printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

from icm.config import RunConfig
from icm.run import ScorerHandle, resume_run, start_run, synthetic_scorer_factory
from icm.run_dir import git_hash
from icm.search import run_icm
from icm.testbeds import LoadOptions, get_testbed

ROOT = Path(__file__).resolve().parents[1]


def zero_shot_agreement(args: argparse.Namespace, seed: int) -> float:
    """What accuracy the model has to keep: each claim scored alone (no demonstrations),
    then in each consistency group the claim with the largest True - False gap labelled
    True and the others False. For testbeds with one true claim per group (capitals); a
    reference printed beside ICM's agreement, not part of ICM."""
    from icm.backends import open_backend
    from icm.run import load_run_table

    cfg = RunConfig(testbed=args.testbed, size=args.size, seed=seed + 1, model_path=args.model_path)
    table = load_run_table(cfg)
    with open_backend(cfg, table.label_words) as scorer:
        scores = scorer.score_prompts([c.prompt for c in table.claims])
    best: dict[str, tuple[float, str]] = {}
    for claim, (true_lp, false_lp) in zip(table.claims, scores, strict=True):
        gap = true_lp - false_lp
        if claim.group not in best or gap > best[claim.group][0]:
            best[claim.group] = (gap, claim.id)
    right = [(c.id == best[c.group][1]) == c.gold for c in table.claims]
    return sum(right) / len(right)


def run_or_resume(cfg: RunConfig) -> dict:
    """The metrics of the run at cfg.out: reused if complete, resumed if stopped (a killed
    benchmark loses at most one search step per run), else started."""
    run_dir = Path(cfg.out)  # type: ignore[arg-type]
    metrics_path = run_dir / "metrics.json"
    if not (run_dir / "config.json").exists():
        start_run(cfg, progress=False)
        return json.loads(metrics_path.read_text())
    saved = RunConfig.load(run_dir / "config.json")
    differ = [
        f.name
        for f in dataclasses.fields(cfg)
        if getattr(saved, f.name) != getattr(cfg, f.name)
        and f.name not in RunConfig.OPERATIONAL_FIELDS
    ]
    if differ:
        detail = ", ".join(
            f"{k} {getattr(saved, k)!r} there, {getattr(cfg, k)!r} here" for k in differ
        )
        raise SystemExit(f"mp_modes: --work: {run_dir} holds a run with other settings ({detail})")
    if not metrics_path.exists() or json.loads(metrics_path.read_text())["status"] != "completed":
        resume_run(run_dir, {}, progress=False)
    return json.loads(metrics_path.read_text())


def model_runs(args: argparse.Namespace, work: Path) -> dict[str, list[dict]]:
    """One exact run per seed, then one sparse run per seed and --context-k value, each a
    run directory under `work`."""
    # (exact mode ignores context_k: its runs keep the default, so they are reused
    # whatever --context-k lists)
    modes = [("exact", RunConfig().context_k)] + [(f"sparse k={k}", k) for k in args.context_k]
    rows: dict[str, list[dict]] = {name: [] for name, _ in modes}
    zero_shot = [zero_shot_agreement(args, seed) for seed in range(args.seeds)]
    for seed in range(args.seeds):
        for name, k in modes:
            cfg = RunConfig(
                testbed=args.testbed,
                size=args.size,
                K=args.K,
                seed=seed + 1,
                mp=name.split()[0],
                context_k=k,
                alpha=args.alpha,
                model_path=args.model_path,
                cache="off",
                out=str(work / f"{name.replace(' ', '-').replace('=', '')}-seed{seed}"),
            )
            m = run_or_resume(cfg)
            row = {
                "seed": seed,
                "zero_shot": zero_shot[seed],
                "prompt_tokens": m["backend"]["prompt_tokens"],
                "requests": m["backend"]["requests"],
                # Summed over the run's executions when it was resumed.
                "wall": m["wall_seconds"],
                "executions": len(m["segments"]),
                "agreement": m["agreement_with_gold"],
                "inconsistencies": m["inconsistencies"],
            }
            rows[name].append(row)
            print(f"  {name:<10} seed {seed}: {row}", file=sys.stderr, flush=True)
    return rows


def synthetic_runs(n: int, k: int, K: int, seeds: int) -> dict[str, list[dict]]:
    table = get_testbed("arithmetic").load("train", LoadOptions(size=n, seed=0))
    rows: dict[str, list[dict]] = {"exact": [], "sparse": []}
    for seed in range(seeds):
        for mode in ("exact", "sparse"):
            cfg = RunConfig(K=K, seed=seed + 1, mp=mode, context_k=k, batch_size=n)
            # The stand-in model indexes claims within a batch: one per batch.
            handle = ScorerHandle(None, "synthetic")  # type: ignore[arg-type]
            scorer = synthetic_scorer_factory(table, seed, handle)
            result = run_icm(table, scorer, cfg.search_params(), n)
            last = result.trace[-1]
            labels = result.labels
            agree = [labels[c.id] == c.gold for c in table.claims if labels[c.id] is not None]
            rows[mode].append(
                {
                    "prompt_claims": last["n_prompt_claims"],
                    "requests": last["n_requests"],
                    "agreement": sum(agree) / len(agree),
                }
            )
    return rows


def mean(rows: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--testbed", default="capitals")
    p.add_argument("--size", type=int, default=12)
    p.add_argument("--K", type=int, default=150)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--context-k",
        type=lambda v: [int(k) for k in v.split(",")],
        default=[4],
        help="sparse mode's demonstrations per claim; a comma list runs sparse once per value",
    )
    p.add_argument("--alpha", type=float, default=30.0)
    p.add_argument("--synthetic-n", type=int, default=256)
    p.add_argument("--synthetic-k", type=int, default=16)
    p.add_argument("--synthetic-K", type=int, default=600)
    p.add_argument(
        "--model-path",
        default=None,
        help="GGUF file, Hugging Face folder or `icm finetune` output (default: the "
        "embedded Gemma 3 270M)",
    )
    p.add_argument("--skip-model", action="store_true")
    p.add_argument(
        "--work",
        default=None,
        help="keep the model runs' directories here (default: a temporary folder): run "
        "the same command again and finished runs are reused, stopped ones resumed",
    )
    p.add_argument(
        "--zero-shot-only",
        action="store_true",
        help="print only the zero-shot reference of each seed's claims (no search)",
    )
    args = p.parse_args()
    # At the start: the checkout may move on during a long run.
    head = git_hash(ROOT, short=True) or "unknown"
    if args.zero_shot_only:
        print(f"mp_modes --zero-shot-only  git {head}  model {args.model_path or 'embedded'}")
        print(f"{args.testbed}, {args.size} claims; the best-gap claim of each group True")
        values = [zero_shot_agreement(args, seed) for seed in range(args.seeds)]
        for seed, value in enumerate(values):
            print(f"seed {seed}: zero-shot agreement {100 * value:.1f}%")
        print(f"mean of {args.seeds} seeds: {100 * statistics.mean(values):.1f}%")
        return 0

    synthetic = synthetic_runs(args.synthetic_n, args.synthetic_k, args.synthetic_K, args.seeds)
    model = None
    if not args.skip_model:
        if args.work:
            model = model_runs(args, Path(args.work))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                model = model_runs(args, Path(tmp))

    print(f"mp_modes  git {head}  seeds {args.seeds}")
    if model is not None:
        print(
            f"\nreal model ({args.model_path or 'embedded Gemma 3 270M'}), {args.testbed}, "
            f"{args.size} claims, "
            f"K={args.K}, alpha={args.alpha:g}, "
            "response cache off"
        )
        print(
            f"zero-shot (each claim alone, best gap per group True): "
            f"{100 * mean(model['exact'], 'zero_shot'):.1f}% agreement, mean of seeds"
        )
        print(
            f"{'mode':<12}{'prompt tokens':>15}{'requests':>10}{'wall s':>9}{'agreement':>11}"
            f"{'inconsistent':>14}"
        )
        for mode, rows in model.items():
            print(
                f"{mode:<12}{mean(rows, 'prompt_tokens'):>15.0f}{mean(rows, 'requests'):>10.0f}"
                f"{mean(rows, 'wall'):>9.0f}{100 * mean(rows, 'agreement'):>10.1f}%"
                f"{mean(rows, 'inconsistencies'):>14.1f}"
            )
        sparse_modes = [mode for mode in model if mode != "exact"]
        print(
            f"{'seed':<6}{'zero-shot':>11}{'exact tokens':>14}{'exact agr':>11}"
            + "".join(f"{m + ' tokens':>18}{'ratio':>8}{m + ' agr':>15}" for m in sparse_modes)
        )
        for i, ex in enumerate(model["exact"]):
            line = (
                f"{ex['seed']:<6}{100 * ex['zero_shot']:>10.1f}%{ex['prompt_tokens']:>14}"
                f"{100 * ex['agreement']:>10.1f}%"
            )
            for m in sparse_modes:
                sp = model[m][i]
                line += (
                    f"{sp['prompt_tokens']:>18}{ex['prompt_tokens'] / sp['prompt_tokens']:>7.1f}x"
                    f"{100 * sp['agreement']:>14.1f}%"
                )
            print(line)
        resumed = [
            f"{mode} seed {r['seed']} ({r['executions']} executions)"
            for mode, rows in model.items()
            for r in rows
            if r["executions"] > 1
        ]
        if resumed:  # their tokens and wall time are sums over the executions
            print(f"resumed runs: {', '.join(resumed)}")
        for m in sparse_modes:
            tokens = mean(model["exact"], "prompt_tokens") / mean(model[m], "prompt_tokens")
            wall = mean(model["exact"], "wall") / mean(model[m], "wall")
            acc = 100 * (mean(model[m], "agreement") - mean(model["exact"], "agreement"))
            print(
                f"exact/{m}: {tokens:.1f}x prompt tokens, {wall:.1f}x wall time; "
                f"agreement {m} - exact: {acc:+.1f} points"
            )
    print(
        f"\nsynthetic scorer (no model), {args.synthetic_n} claims (one batch"
        + (", the paper's size" if args.synthetic_n == 256 else "")
        + f"), K={args.synthetic_K}, sparse context_k={args.synthetic_k}"
    )
    print(f"{'mode':<8}{'prompt claims':>15}{'requests':>10}{'agreement':>11}")
    for mode in ("exact", "sparse"):
        rows = synthetic[mode]
        print(
            f"{mode:<8}{mean(rows, 'prompt_claims'):>15.0f}{mean(rows, 'requests'):>10.0f}"
            f"{100 * mean(rows, 'agreement'):>10.1f}%"
        )
    ratio = mean(synthetic["exact"], "prompt_claims") / mean(synthetic["sparse"], "prompt_claims")
    acc = 100 * (mean(synthetic["sparse"], "agreement") - mean(synthetic["exact"], "agreement"))
    print(
        f"exact/sparse: {ratio:.1f}x prompt claims (~tokens); agreement sparse - exact: "
        f"{acc:+.1f} points"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
