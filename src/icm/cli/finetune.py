"""`icm finetune RUN_DIR [RUN_DIR ...] --out DIR`: LoRA fine-tuning on a run's labels.

`--labels gold` trains on the same claims with their gold labels instead: the golden-label
fine-tune of the paper's comparison (`icm eval --finetuned A --finetuned B` then puts both
beside the zero-shot base model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from icm.cli.options import add_option, add_table, table_values
from icm.errors import ConfigError, DataError
from icm.export import load_run
from icm.finetune import finetune, sft_example
from icm.finetune_config import FINETUNE_OPTIONS, FinetuneConfig
from icm.run_dir import FinishedRun


def base_of_run(config: dict[str, Any], run_dir: Path) -> str:
    """The model a run was labelled with, as a source transformers can load."""
    cfg = config.get("config", {})
    if cfg.get("model_path"):
        return str(cfg["model_path"])
    if cfg.get("model") == "embedded" and not cfg.get("base_url"):
        return "embedded"
    raise ConfigError(
        f"{run_dir}: labelled by '{cfg.get('model')}' on a server; give its weights "
        "(a Hugging Face folder or a GGUF file) with --base"
    )


def collect_examples(runs: list[FinishedRun], labels: str) -> list[dict[str, str]]:
    """One prompt-completion example per labelled claim of every run."""
    examples: list[dict[str, str]] = []
    for run in runs:
        for r in run.rows:
            if labels == "gold":
                if not isinstance(r.get("gold"), bool):
                    raise DataError(
                        f"{run.run_dir / 'labels.jsonl'}: claim {r['id']!r} has no gold label "
                        "(--labels gold needs one for every labelled claim)"
                    )
                label = r["gold"]
            else:
                label = r["label"]
            examples.append(sft_example(r["prompt"], label, run.label_words))
    return examples


def shared_base(runs: list[FinishedRun]) -> str:
    """The base model every run was labelled with (ConfigError if there is none)."""
    bases = {base_of_run(run.config, run.run_dir) for run in runs}
    if len(bases) != 1:
        raise ConfigError(
            f"--base: the runs were labelled with different models ({', '.join(sorted(bases))}); "
            "name the base model to fine-tune"
        )
    return bases.pop()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "finetune",
        help="LoRA fine-tuning (TRL + PEFT) on a run's labels",
        description="Fine-tune the base model on the labels of one or more runs (LoRA "
        "adapter + finetune.json in --out). Needs the 'finetune' extra.",
    )
    p.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="runs whose labels to train on"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the adapter")
    p.add_argument(
        "--labels",
        choices=["icm", "gold"],
        default="icm",
        help="icm: the runs' labels; gold: the same claims' gold labels (the comparison)",
    )
    add_table(
        p,
        FINETUNE_OPTIONS,
        changes={
            "base": {
                "default": None,
                "help": "base model: GGUF file, Hugging Face folder or 'embedded' (default: "
                "the model the runs were labelled with)",
            },
            "lora_alpha": {"default": None, "help": "LoRA alpha (default: 2 * --lora-r)"},
        },
    )
    add_option(p, "seed", default=FinetuneConfig.seed, help="training seed")
    p.set_defaults(handler=cmd_finetune)

    m = sub.add_parser(
        "merge-gguf",
        help="an icm finetune adapter merged into its GGUF base, for llama.cpp",
        description="Write the fine-tuned model (adapter merged into its GGUF base, adapted "
        "weights in float32) as a GGUF file, so that `icm run --model-path FILE` serves it "
        "with llama.cpp. Needs the 'finetune' extra.",
    )
    m.add_argument("adapter", type=Path, metavar="ADAPTER_DIR", help="an icm finetune --out")
    m.add_argument(
        "--out", type=Path, default=None, help="the GGUF file (default: ADAPTER_DIR/merged.gguf)"
    )
    m.set_defaults(handler=cmd_merge_gguf)


def cmd_finetune(args: argparse.Namespace) -> int:
    for run_dir in args.run_dirs:
        if not run_dir.is_dir():
            raise ConfigError(f"RUN_DIR: '{run_dir}' is not a directory")
    if args.out.exists() and any(args.out.iterdir()):
        raise ConfigError(f"--out: '{args.out}' exists and is not empty")
    runs = [load_run(r) for r in args.run_dirs]
    if args.labels == "icm":
        for run in runs:
            if warning := run.quality_warning():
                print(f"WARNING: {warning}; the model will learn that labelling", file=sys.stderr)
    examples = collect_examples(runs, args.labels)
    settings = table_values(args, FINETUNE_OPTIONS)
    settings["base"] = args.base or shared_base(runs)
    settings["lora_alpha"] = args.lora_alpha or 2 * args.lora_r
    cfg = FinetuneConfig(**settings, seed=args.seed)
    source = {"runs": [str(r) for r in args.run_dirs], "labels": args.labels}
    # finetune() logs the example count and the loss by epoch itself.
    finetune(
        examples, cfg, args.out, source=source, log=lambda m: print(f"icm: {m}", file=sys.stderr)
    )
    print(str(args.out))
    return 0


def cmd_merge_gguf(args: argparse.Namespace) -> int:
    from icm.gguf_export import merge_gguf

    out = merge_gguf(args.adapter, args.out)
    print(str(out))
    return 0
