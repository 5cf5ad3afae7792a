"""Training exports of a run's labels: SFT, DPO and reward-model pairs, a Hugging Face folder.

The labels are the search's own (no gold label is used to make them); gold labels, where a
testbed has them, are left out unless asked for, because a training set that carries them
is no longer unsupervised.

Preference pairs come from structure that holds by construction, never from gold:
  * pairwise claims ("response A is better than response B", fields question/first/second):
    a claim labelled True prefers `first`, one labelled False prefers `second`; the
    order-swapped twin states the same pair, so it is kept once, and a twin pair whose
    labels contradict each other gives no pair;
  * claims of one consistency group written with the claim template ("Question: ...
    Claim: ..."): every claim labelled True against every claim labelled False of the same
    question (prompt = the question, chosen/rejected = the claims).
`--label-pairs` adds, for every labelled claim, the pair (assigned label word, other word).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from icm.errors import ConfigError, DataError
from icm.run_dir import (
    FinishedRun,
    atomic_write_text,
    read_finished_run,
    refuse_run_file,
    write_jsonl,
)

ExportFormat = Literal["sft", "dpo", "reward", "hf"]
FORMATS: tuple[str, ...] = ("sft", "dpo", "reward", "hf")

# The claim template of icm/testbeds/base.py, read back: question and claim of one prompt.
_TEMPLATE_RE = re.compile(r"\AQuestion: (?P<question>.*)\nClaim: (?P<claim>.*)\n[^\n]*\Z", re.S)


@dataclass
class PreferencePairs:
    rows: list[dict[str, Any]] = field(default_factory=list)
    contradicting_twins: int = 0  # twin claims whose labels state opposite preferences


def load_run(run_dir: Path) -> FinishedRun:
    """The run's outputs (icm.run_dir.read_finished_run), refused when no claim has a label."""
    run = read_finished_run(run_dir)
    if not run.rows:
        raise DataError(
            f"{run_dir / 'labels.jsonl'}: no claim has a label (did the search finish?)"
        )
    return run


def check_out(out: Path, run: FinishedRun, fmt: str) -> None:
    """Refuse an --out that would overwrite a run's files or its claims file, or a directory
    where a file is written."""
    refuse_run_file(out)
    testbed = Path(str(run.config["config"]["testbed"]))
    if testbed.is_file() and out.exists() and testbed.resolve() == out.resolve():
        raise ConfigError(
            f"--out: '{out}' is the run's claims file; writing there would overwrite it: "
            "give another path"
        )
    if fmt != "hf" and out.is_dir():
        raise ConfigError(f"--out: '{out}' is a directory; give a file for --format {fmt}")


def sft_rows(run: FinishedRun, *, with_gold: bool = False) -> list[dict[str, Any]]:
    """Prompt-completion rows (TRL's format): the claim prompt and its label word."""
    out = []
    for r in run.rows:
        row: dict[str, Any] = {
            "prompt": r["prompt"],
            "completion": run.label_words[0] if r["label"] else run.label_words[1],
            "id": r["id"],
            "label": r["label"],
            "group": r.get("group", ""),
        }
        if with_gold:
            row["gold"] = r.get("gold")
        out.append(row)
    return out


def preference_pairs(run: FinishedRun, *, label_pairs: bool = False) -> PreferencePairs:
    pairs = PreferencePairs()
    seen: dict[tuple[str, str, str], str] = {}  # (question, chosen, rejected) -> claim id
    by_group: dict[str, list[tuple[dict[str, Any], str, str]]] = defaultdict(list)
    for r in run.rows:
        f = r.get("fields") or {}
        if all(isinstance(f.get(k), str) for k in ("question", "first", "second")):
            chosen, rejected = f["first"], f["second"]
            if not r["label"]:
                chosen, rejected = rejected, chosen
            key = (f["question"], chosen, rejected)
            flipped = (f["question"], rejected, chosen)
            if flipped in seen:  # the twin said the opposite: no usable preference
                pairs.contradicting_twins += 1
                seen.pop(flipped)
                continue
            seen.setdefault(key, r["id"])
            continue
        m = _TEMPLATE_RE.match(r["prompt"])
        if m and r.get("group"):
            by_group[r["group"]].append((r, m["question"], m["claim"]))
    for (question, chosen, rejected), cid in seen.items():
        pairs.rows.append(
            {
                "prompt": question,
                "chosen": chosen,
                "rejected": rejected,
                "source": "pairwise-claim",
                "ids": [cid],
            }
        )
    for group, members in by_group.items():
        for r_true, q_true, claim_true in members:
            if not r_true["label"]:
                continue
            for r_false, q_false, claim_false in members:
                if r_false["label"] or q_false != q_true or claim_false == claim_true:
                    continue
                pairs.rows.append(
                    {
                        "prompt": q_true,
                        "chosen": claim_true,
                        "rejected": claim_false,
                        "source": f"group {group}",
                        "ids": [r_true["id"], r_false["id"]],
                    }
                )
    if label_pairs:
        yes, no = run.label_words
        for r in run.rows:
            pairs.rows.append(
                {
                    "prompt": r["prompt"],
                    "chosen": yes if r["label"] else no,
                    "rejected": no if r["label"] else yes,
                    "source": "label-word",
                    "ids": [r["id"]],
                }
            )
    return pairs


def reward_rows(pairs: PreferencePairs) -> list[dict[str, Any]]:
    """Reward-model rows in the implicit-prompt form: whole texts, chosen over rejected."""
    return [
        {
            "chosen": _join(p["prompt"], p["chosen"]),
            "rejected": _join(p["prompt"], p["rejected"]),
            "source": p["source"],
            "ids": p["ids"],
        }
        for p in pairs.rows
    ]


def _join(prompt: str, response: str) -> str:
    return prompt + response if prompt.endswith((" ", "\n")) else f"{prompt}\n{response}"


def export(
    run_dir: Path,
    fmt: str,
    out: Path,
    *,
    with_gold: bool = False,
    label_pairs: bool = False,
) -> dict[str, Any]:
    """Write one export; returns a summary (counts, paths) for the CLI to print."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    run = load_run(run_dir)
    check_out(out, run, fmt)
    summary: dict[str, Any] = {"run": str(run_dir), "format": fmt, "claims": len(run.rows)}
    if warning := run.quality_warning():
        summary["warning"] = warning
    if run.n_unlabeled:
        summary["unlabeled_claims_left_out"] = run.n_unlabeled
    if fmt == "sft":
        rows = sft_rows(run, with_gold=with_gold)
        write_jsonl(out, rows)
        summary.update(rows=len(rows), path=str(out))
        return summary
    pairs = preference_pairs(run, label_pairs=label_pairs)
    summary["contradicting_twins"] = pairs.contradicting_twins
    if fmt in ("dpo", "reward"):
        rows = pairs.rows if fmt == "dpo" else reward_rows(pairs)
        if not rows:
            raise DataError(
                f"{run_dir}: no preference pair: this testbed has no pairwise claims or groups "
                "with both labels; use --label-pairs for (label word, other word) pairs"
            )
        write_jsonl(out, rows)
        summary.update(rows=len(rows), path=str(out))
        return summary
    summary.update(write_hf_folder(run, out, sft_rows(run, with_gold=with_gold), pairs))
    return summary


def write_hf_folder(
    run: FinishedRun, out: Path, sft: list[dict[str, Any]], pairs: PreferencePairs
) -> dict[str, Any]:
    """A folder `datasets.load_dataset(out)` reads offline: parquet files plus a dataset
    card whose YAML header names one config per file.

    Each file's name carries a hash of its content (`labels-<hash>.parquet`): `datasets`
    caches a local folder's configs under the folder's name and the card's file names
    (not their paths or times), so a second export into a folder of the same name (every
    run's is `export/hf`) was answered from the cache with the first one's rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    configs = [("labels", sft)]
    if pairs.rows:
        configs.append(("preference", pairs.rows))
    written: list[tuple[str, str, list[dict[str, Any]]]] = []
    for name, rows in configs:
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        filename = f"{name}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]}.parquet"
        tmp.replace(out / filename)
        written.append((name, filename, rows))
    atomic_write_text(out / "README.md", dataset_card(run, written))
    current = {filename for _, filename, _ in written}
    for name in ("labels", "preference"):  # an earlier export's files, now unnamed
        for old in (*out.glob(f"{name}-*.parquet"), out / f"{name}.parquet"):
            if old.name not in current:
                old.unlink(missing_ok=True)
    return {"path": str(out), "configs": {name: len(rows) for name, _, rows in written}}


def dataset_card(run: FinishedRun, configs: list[tuple[str, str, list[dict[str, Any]]]]) -> str:
    header = ["---", "configs:"]
    for i, (name, filename, _) in enumerate(configs):
        header += [f"- config_name: {name}", f"  data_files: {filename}"]
        if i == 0:
            header.append("  default: true")
    header.append("---")
    testbed = run.config.get("testbed", {})
    cfg = run.config.get("config", {})
    leak = testbed.get("structure_uses_gold")
    lines = [
        f"# ICM labels: {testbed.get('name', cfg.get('testbed', '?'))} "
        f"({testbed.get('split', cfg.get('split', '?'))})",
        "",
        "Labels found by Internal Coherence Maximization (`icm run`) **without human or gold "
        "labels**: they are what the search judged most mutually predictable and consistent "
        "for the model below. Treat them as unsupervised labels, not ground truth.",
        "",
    ]
    if leak:
        lines += [
            "**Warning:** this run used consistency keys derived from gold labels "
            "(`--consistency paper`), so the labels are not fully unsupervised.",
            "",
        ]
    agreement = run.metrics.get("agreement_with_gold")
    lines += [
        f"- scorer: {run.metrics.get('scorer') or cfg.get('model', '?')}",
        f"- labelled claims: {len(run.rows)}; label words: {list(run.label_words)}",
        f"- agreement with gold (measured after the search, for reporting): {agreement}",
        f"- icm versions: {json.dumps(run.metrics.get('versions', run.config.get('versions')))}",
        "",
        "Configs: "
        + ", ".join(f"`{name}` ({len(rows)} rows, {fn})" for name, fn, rows in configs)
        + ". `labels`: prompt, completion (the label word), id, label, group. `preference`: "
        "prompt, chosen, rejected, built from pairwise claims and consistency groups.",
        "",
        "## The run's resolved configuration",
        "",
        "```json",
        json.dumps(cfg, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(header) + "\n\n" + "\n".join(lines)
