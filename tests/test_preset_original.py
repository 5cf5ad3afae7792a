"""`icm run --preset original`: everything as the original code does it.

The end-to-end check records every prompt that `icm run --preset original` sends over
HTTP, and compares them with the prompts the original code would send for the same batch:
the slow reference search (reference_icm.py, the original code's variant, seeds at the
start of the batch) is run on the same claims with the same scores, and each of its
requests is rendered the way the original's get_judge_prompt_fewshot does it: the other
labeled claims of the batch in batch order, each prompt + "True"/"False" + a blank line,
then the claim's prompt, its trailing space kept.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from icm.backends.base import label_logprobs
from icm.cli import build_parser, main
from icm.cli.run import config_from_args
from icm.config import PRESETS, RunConfig
from icm.run_dir import read_jsonl
from icm.search import batch_seed, plan_batches
from icm.testbeds import LoadOptions
from icm.testbeds.loading import load_table
from tests.reference_icm import Params, ReferenceSearch
from tests.test_search_reference import CODE

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KIND_NAMES = {"SAME": "same", "AT_MOST_ONE_TRUE": "at_most_one_true", "OPPOSITE": "opposite"}


def parse(*argv: str) -> RunConfig:
    args = build_parser().parse_args(["run", *argv])
    args.argv = ["run", *argv]
    return config_from_args(args)


def test_preset_original_sets_the_original_configuration() -> None:
    cfg = parse("--preset", "original", "--testbed", "truthfulQA")
    for name, value in PRESETS["original"].items():
        assert getattr(cfg, name) == value, name
    assert cfg.preset == "original"
    params = cfg.search_params(cfg.batch_claims(256))
    assert params.alpha == 30.0  # not rescaled: the original's value
    assert str(params.seed_placement).endswith("BATCH_START")
    assert str(params.mp_mode).endswith("EXACT")


def test_the_original_keys_only_where_a_testbed_has_them() -> None:
    # capitals (the default) and claims files have no original keys: their own relations.
    assert parse("--preset", "original").consistency == "default"
    assert parse("--preset", "original", "--testbed", "alpaca").consistency == "paper"
    # Asked for explicitly, it stays asked for (and the load names what the testbed offers).
    assert parse("--preset", "original", "--consistency", "paper").consistency == "paper"


def test_flags_given_explicitly_override_the_preset() -> None:
    cfg = parse("--preset", "original", "--K", "7", "--alpha", "50", "--size", "12")
    assert (cfg.K, cfg.alpha, cfg.size) == (7, 50.0, 12)
    assert cfg.mp == "exact" and cfg.algorithm == "code"


def test_an_unknown_preset_is_one_clear_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--preset", "paper-ish", "--model", "synthetic"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--preset" in err and "original" in err and "Traceback" not in err


def fake_gap(prompt: str) -> tuple[float, float]:
    """Deterministic top logprobs of ' True' and ' False' for a prompt."""
    digest = hashlib.blake2b(prompt.encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    return -0.2 - 2.0 * u, -0.2 - 2.0 * (1 - u)


class RecordingServer(ThreadingHTTPServer):
    prompts: list[str]


class Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "recorder", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["prompt"]
        self.server.prompts.append(prompt)
        lt, lf = fake_gap(prompt)
        self._send(
            {
                "object": "text_completion",
                "model": "recorder",
                "choices": [
                    {
                        "index": 0,
                        "text": " True" if lt > lf else " False",
                        "logprobs": {
                            "tokens": [" True"],
                            "token_logprobs": [max(lt, lf)],
                            "top_logprobs": [{" True": lt, " False": lf}],
                        },
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), Handler)
    server.prompts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_preset_original_sends_the_original_codes_prompts(recorder, tmp_path) -> None:
    if not (SHARED_DATA / "paper_splits" / "train_truthfulqa.json").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    host, port = recorder.server_address[:2]
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--preset",
            "original",
            "--testbed",
            "truthfulQA",
            "--data-dir",
            str(SHARED_DATA),
            "--size",
            "12",
            "--K",
            "12",
            "--base-url",
            f"http://{host}:{port}/v1",
            "--model",
            "recorder",
            "--cache",
            "off",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    cfg = RunConfig.load(out / "config.json")
    table = load_table(
        "truthfulqa",
        "train",
        LoadOptions(data_dir=SHARED_DATA, size=12, seed=cfg.seed, consistency="paper"),
    )
    (batch,) = plan_batches(table, cfg.batch_size, cfg.seed)
    claims = [table.claims[i] for i in batch]
    # The original's batches are whole groups, one after the other.
    groups = [c.group for c in claims]
    assert all(groups.index(g) == k or groups[k - 1] == g for k, g in enumerate(groups))

    claim_set = table.to_claim_set().subset(batch)
    relations = [
        (KIND_NAMES[str(r.kind).rsplit(".", 1)[-1]], r.a, r.b) for r in claim_set.relations
    ]
    assert relations and claim_set.n_constraints == len(relations)  # no group constraints

    def original_prompt(request: tuple[int, tuple[int, ...], tuple[bool, ...]]) -> str:
        target, demos, labels = request
        text = "".join(
            claims[d].prompt + ("True" if lab else "False") + "\n\n"
            for d, lab in sorted(zip(demos, labels, strict=True))  # batch (uid) order
        )
        return text + claims[target].prompt

    expected: set[str] = set()

    def score(request: tuple[int, tuple[int, ...], tuple[bool, ...]]) -> tuple[float, float]:
        prompt = original_prompt(request)
        expected.add(prompt)
        lt, lf = fake_gap(prompt)
        return label_logprobs({" True": lt, " False": lf})

    params = Params(seed=batch_seed(cfg.seed, 0), K=cfg.K, alpha=30.0, num_seed=8, **CODE)
    reference = ReferenceSearch(groups, relations, params, score)
    steps = [reference.step() for _ in range(cfg.K + 1)]
    assert steps[0]["outcome"] == "init"

    sent = set(recorder.prompts)
    assert all(p.endswith("I think this claim is ") for p in sent)  # trailing space kept
    # Beside the search's prompts, icm's zero-shot reference sends each claim alone.
    assert sent == expected | {c.prompt for c in claims}
    labels = {row["id"]: row["label"] for row in read_jsonl(out / "labels.jsonl")}
    assert [labels[c.id] for c in claims] == reference.labels
    # The seeds: the first 8 claims of the batch, two whole groups of 4.
    seeded = [lab is not None for lab in steps[0]["labels"]]
    assert seeded[:8] == [True] * 8 and len({c.group for c in claims[:8]}) == 2
