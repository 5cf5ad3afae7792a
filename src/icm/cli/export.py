"""`icm export RUN_DIR --format sft|dpo|reward|hf`: a run's labels as training data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from icm.export import FORMATS, export

DEFAULT_NAMES = {"sft": "sft.jsonl", "dpo": "dpo.jsonl", "reward": "reward.jsonl", "hf": "hf"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a run's labels as SFT / DPO / reward data or a Hugging Face dataset folder",
        description="Export the labels of a finished run. sft: JSONL prompt/completion (the "
        "claim and its label word). dpo: JSONL prompt/chosen/rejected from pairwise claims "
        "and consistency groups. reward: the same pairs as whole chosen/rejected texts. hf: a "
        "folder of parquet files and a dataset card that `datasets.load_dataset(FOLDER)` "
        "reads. Gold labels are left out unless --with-gold.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory written by `icm run`")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write (see above)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (folder for hf); default: RUN_DIR/export/{sft,dpo,reward}.jsonl or "
        "RUN_DIR/export/hf",
    )
    p.add_argument(
        "--with-gold",
        action="store_true",
        help="add the testbed's gold label to SFT / hf rows (for analysis, not training)",
    )
    p.add_argument(
        "--label-pairs",
        action="store_true",
        help="also make a pair per claim: its label word chosen over the other word",
    )
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    out = args.out or args.run_dir / "export" / DEFAULT_NAMES[args.format]
    summary = export(
        args.run_dir, args.format, out, with_gold=args.with_gold, label_pairs=args.label_pairs
    )
    print(json.dumps(summary, indent=2))
    if "warning" in summary:
        print(f"WARNING: {summary['warning']}", file=sys.stderr)
    return 0
