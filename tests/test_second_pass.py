"""Issue 23, reliability second pass: the new surfaces a new user reached (claims with
lone surrogates, `icm.api.claims_table` inputs, eval flags, exports, caches, full disks,
resumes, secrets). Each test failed before its fix; docs/reliability.md has its row.

Runs use the synthetic stand-in scorer or a fake HTTP server: no model is needed.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.test_backend_failures import FAST_RETRY, GOOD, PROMPT, SECRET, fake_server, icm_run
from tests.test_bad_inputs import QUICK, icm_in_process, one_error_line

__all__ = ["fake_server"]  # a fixture, used by name

CHAT_GOOD = {
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "True"},
            "logprobs": {
                "content": [
                    {
                        "token": "True",
                        "logprob": -0.3,
                        "top_logprobs": [
                            {"token": "True", "logprob": -0.3},
                            {"token": "False", "logprob": -1.4},
                        ],
                    }
                ]
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1},
}

# ------------------------------------------------------------ text that is not Unicode

SURROGATE_LINE = '{"id": "s1", "claim": "lone \\ud800 surrogate", "label": true}\n'


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_lone_surrogate_in_a_claims_file_names_file_line_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    """`"\\ud800"` is valid JSON but no Unicode text: `icm run` ended in a TypeError
    traceback from the C++ core (after making its run directory), `icm show` in a line
    naming no file ('utf-8' codec can't encode...)."""
    claims = tmp_path / f"claims{suffix}"
    other = '{"id": "s2", "claim": "fine", "label": false}\n'
    if suffix == ".jsonl":
        claims.write_text(SURROGATE_LINE + other)
    else:
        claims.write_text("[" + SURROGATE_LINE + "," + other + "]")
    out = tmp_path / "run"
    expected = f"{claims}:1: field 'claim': not valid Unicode text"
    for args in (
        (*QUICK, "--testbed", str(claims), "--out", str(out)),
        ("show", str(claims)),
    ):
        assert expected in one_error_line(icm_in_process(capsys, *args))
    assert not out.exists()


def test_a_lone_surrogate_in_a_key_or_a_relation_list_is_refused(tmp_path: Path) -> None:
    from icm.errors import DataError
    from icm.testbeds.custom import load_claims_file

    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"id": "a", "claim": "x", "same": ["b", "\\udc00"]}\n')
    with pytest.raises(DataError, match=r":1: field 'same': not valid Unicode text"):
        load_claims_file(claims)
    claims.write_text('{"id": "a", "claim": "x", "\\u0080\\ud800": 1}\n')  # found by test_fuzz
    with pytest.raises(DataError, match=r"field '\\x80\\ud800': not valid Unicode text"):
        load_claims_file(claims)


# ------------------------------------------------------------ icm.api.claims_table


@pytest.mark.parametrize(
    ("claims", "kwargs", "message"),
    [
        ([{"id": "a", "question": None, "claim": "c"}], {}, "claims[0].question: expected a str"),
        ([{"id": "a", "question": "q", "claim": None}], {}, "claims[0].claim: expected a string"),
        (
            [{"id": "a", "question": "q", "claim": float("nan")}],
            {},
            "claims[0].claim: expected a string, got nan",
        ),
        ([{"id": "a", "question": "q", "claim": "  "}], {}, "claims[0].claim: empty"),
        ([{"id": "a", "prompt": ""}], {}, "claims[0].prompt: empty"),
        ([{"id": "a", "prompt": "lone \ud800"}], {}, "claims[0].prompt: not valid Unicode"),
        ([], {}, "claims: empty"),
        (
            [{"id": "a", "question": "q", "claim": "c"}],
            {"template": "Question: {question}\nI think this claim is "},
            "has no {claim}",
        ),
        (
            [{"id": "a", "question": "q", "claim": "c"}],
            {"template": "Claim: {claim}\nI think this claim is "},
            "claims[0].question: the template",
        ),
        ([{"id": "a", "claim": "c"}], {}, "claims[0]: needs 'prompt', or 'question' and 'claim'"),
    ],
)
def test_api_claims_table_refuses_none_nan_empty_and_a_template_without_claim(
    claims: object, kwargs: dict[str, object], message: str
) -> None:
    """Before: a claim or question None became the text "None" (NaN "nan"), an empty list or
    an empty claim was accepted, and a template without {claim} gave every claim the same
    prompt (docs/reliability.md said it was refused)."""
    from icm.api import claims_table
    from icm.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        claims_table(claims, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_api_claims_table_template_with_only_claim_needs_no_question() -> None:
    from icm.api import claims_table

    table = claims_table([{"id": "a", "claim": "c"}], template="Claim: {claim}\nI think ")
    assert table.claims[0].prompt == "Claim: c\nI think "


# ------------------------------------------------------------ secrets


def echoing_401(fake_server: Any) -> Any:
    """A server that refuses every completion, echoing the Authorization it received
    (as some proxies and API servers do: "invalid key Basic dXNl...")."""
    holder: list[Any] = []

    def reply(n: int, path: str) -> tuple[int, Any]:
        return 401, {"error": {"message": f"invalid key {holder[0].auth_headers[-1]}"}}

    holder.append(fake_server(reply))
    return holder[0]


def test_basic_credentials_echoed_by_a_server_are_redacted_everywhere(
    fake_server: Any, tmp_path: Path
) -> None:
    """With `--base-url http://user:pass@host/v1`, a server's "invalid key Basic dXNl..."
    was printed and stored in metrics.json (bearer keys were already redacted)."""
    server = echoing_401(fake_server)
    out = tmp_path / "run"
    r = icm_run(server.url.replace("http://", "http://alice:hunter2pw@"), out)
    token = base64.b64encode(b"alice:hunter2pw").decode()
    assert r.returncode == 2 and "HTTP 401: invalid key Basic REDACTED" in r.stderr, r.stderr
    assert f"Basic {token}" in server.auth_headers  # sent, never shown
    assert token not in r.stdout + r.stderr and "hunter2pw" not in r.stdout + r.stderr
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert token.encode() not in data and b"hunter2pw" not in data, path


def test_the_chat_baseline_redacts_echoed_basic_credentials(fake_server: Any) -> None:
    from icm.backends.chat import ChatScorer
    from icm.errors import BackendError

    server = echoing_401(fake_server)
    token = base64.b64encode(b"alice:hunter2pw").decode()
    scorer = ChatScorer(server.url.replace("http://", "http://alice:hunter2pw@"), "m")
    with pytest.raises(BackendError) as e:
        scorer.score_prompts(["Claim: x\nI think this claim is "])
    scorer.close()
    assert "invalid key Basic REDACTED" in str(e.value) and token not in str(e.value)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("invalid key Basic dXNlcjpwYXNz", "invalid key Basic REDACTED"),
        ("bad Bearer sk-abc.def_1", "bad Bearer REDACTED"),
        ('{"Authorization": "tok123"}', '{"Authorization": "REDACTED"}'),
        ("authorization=tok123; x", "authorization=REDACTED; x"),
    ],
)
def test_any_authorization_value_is_redacted(text: str, redacted: str) -> None:
    from icm.backends.completions import redact_credentials

    assert redact_credentials(text) == redacted


@pytest.mark.parametrize("scorer_kind", ["completions", "chat"])
def test_an_api_key_and_url_credentials_together_send_the_key_and_say_so(
    fake_server: Any, capsys: pytest.CaptureFixture[str], scorer_kind: str
) -> None:
    """`user:pass@` in the URL replaced the API key's bearer header (httpx's Basic auth from
    the URL wins), so a vLLM `--api-key` server answered 401, without a word."""
    from icm.backends.chat import ChatScorer
    from icm.backends.completions import CompletionsScorer

    server = fake_server(lambda n, path: (200, CHAT_GOOD if "chat" in path else GOOD))
    url = server.url.replace("http://", "http://alice:hunter2pw@")
    if scorer_kind == "chat":
        chat = ChatScorer(url, "fake-model", api_key=SECRET)
        chat.score_prompts([PROMPT])
        chat.close()
    else:
        with CompletionsScorer([url], "fake-model", api_key=SECRET, retry=FAST_RETRY) as scorer:
            scorer.score_prompts([PROMPT])
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}
    err = capsys.readouterr().err
    assert "the API key is sent as the Authorization header" in err
    assert "hunter2pw" not in err and SECRET not in err


# ------------------------------------------------------------ icm eval flags


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-demos", "-1"),
        ("--max-demos", "0"),
        ("--context-tokens", "-5"),
        ("--context-tokens", "0"),
    ],
)
def test_eval_refuses_counts_that_leave_no_demonstration(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """They ran with no demonstrations and exited 0, without a warning."""
    r = icm_in_process(capsys, "eval", "--labels", "golden", "--model", "m",
                       "--base-url", "http://127.0.0.1:9", flag, value)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.search(rf"argument {flag}\S*: must be >= 1, got {value}\n", r.stderr), r.stderr


# ------------------------------------------------------------ the response cache


def damaged_default_cache(folder: Path) -> Path:
    """The default cache with its 16-byte SQLite header overwritten (a bad sector, a
    stray write): a real cache file, not a user's."""
    from icm.backends.response_cache import ResponseCache

    path = folder / "responses.sqlite"
    cache = ResponseCache(path)
    cache.put_many("m", [("k", (-0.1, -2.0))])
    cache.close()
    with path.open("r+b") as f:
        f.write(b"\x00garbage-header!")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("cache", "stats"),
        ("cache", "clear"),
        (
            "run",
            "--model",
            "fake-model",
            "--base-url",
            "{url}",
            "--size",
            "4",
            "--K",
            "3",
            "--quiet",
            "--out",
            "{out}",
        ),
    ],
    ids=["stats", "clear", "run"],
)
def test_a_damaged_header_of_the_default_cache_is_set_aside_not_a_stop(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_server: Any,
    args: tuple[str, ...],
) -> None:
    """The default cache with a damaged header was refused as "not a response cache": every
    run stopped, and `icm cache clear` too (docs/reliability.md: the cache costs time, never
    a run)."""
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "cache"))
    path = damaged_default_cache(tmp_path / "cache")
    url = fake_server(lambda n, p: (200, GOOD)).url
    r = icm_in_process(capsys, *(a.format(out=tmp_path / "run", url=url) for a in args))
    assert r.returncode == 0, r.stderr
    assert f"response cache {path} is damaged" in r.stderr and "set it aside" in r.stderr
    assert len(list(path.parent.glob("responses.sqlite.corrupt-*"))) == 1


def test_a_named_cache_file_that_is_not_sqlite_is_still_refused(tmp_path: Path) -> None:
    from icm.backends.response_cache import ResponseCache
    from icm.errors import ConfigError

    path = damaged_default_cache(tmp_path)
    with pytest.raises(ConfigError, match="is not a response cache"):
        ResponseCache(path)  # --cache PATH: it may be the user's file


# ------------------------------------------------------------ file modes


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_run_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    """config.json, labels.jsonl, metrics.json (written through mkstemp) were 0600 while
    trace.jsonl, log.txt and trace.png were 0644: every run file now gets 0666 & ~umask."""
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-c",
         f"import os, sys; os.umask({umask}); from icm.cli import main; "
         "sys.exit(main(sys.argv[1:]))",
         *QUICK, "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert {"config.json", "labels.jsonl", "metrics.json", "trace.jsonl", "log.txt"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, modes


# ------------------------------------------------------------ a full disk


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real full disk. Needs root and mount; skipped elsewhere (the
    simulated tests below cover the same paths everywhere)."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_leaving(folder: Path, free_kib: int) -> None:
    """Fill the file system of `folder` until about `free_kib` KiB are left."""
    stat = os.statvfs(folder)
    spare = stat.f_bavail * stat.f_frsize - free_kib * 1024
    with (folder / "filler").open("wb") as f:
        f.write(b"\0" * max(spare, 0))


def test_a_full_disk_under_out_names_the_file_for_real(
    capsys: pytest.CaptureFixture[str], small_tmpfs: Path
) -> None:
    """A full disk under --out gave `icm: error: No space left on device (OSError)`:
    write, flush and fsync report no file name."""
    fill_leaving(small_tmpfs, 8)
    out = small_tmpfs / "run"
    r = icm_in_process(capsys, "run", "--model", "synthetic", "--size", "all", "--K", "200",
                       "--quiet", "--out", str(out))  # fmt: skip
    line = one_error_line(r)
    assert re.search(rf"icm: error: {re.escape(str(out))}/\S+: No space left on device", line)


@pytest.mark.parametrize("where", ["trace", "state", "log"])
def test_a_full_disk_under_out_names_the_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """The same, simulated (runs anywhere): ENOSPC raised where a full disk raises it, by
    fsync (trace.jsonl before a checkpoint, state.json) or by a write to log.txt, each
    without a file name as the OS gives it."""
    import icm.run_dir

    out = tmp_path / "run"
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fsync, real_open = os.fsync, Path.open

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if f"{where}.json" in name:  # trace.jsonl, or .state.json.XXXX.tmp
            raise enospc
        real_fsync(fd)

    class FullLog:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> FullLog:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write(self, text: str) -> int:
            raise enospc

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if where == "log" and self.name == "log.txt":
            return FullLog()
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(icm.run_dir.Path, "open", open_)
    r = icm_in_process(capsys, *QUICK, "--out", str(out))
    line = one_error_line(r)
    name = {"trace": "trace.jsonl", "state": "state.json", "log": "log.txt"}[where]
    assert f"icm: error: {out / name}: No space left on device (OSError)" in line


def test_a_full_disk_under_the_cache_costs_storing_not_the_run(tmp_path: Path) -> None:
    """A full disk under --cache ended the run in an sqlite3.OperationalError traceback
    ("cannot rollback - no transaction is active", hiding "database or disk is full").
    Simulated with SQLite's own limit on the file's size (PRAGMA max_page_count), which
    fails exactly as a full disk does (SQLITE_FULL)."""
    from icm.backends.base import LabelScorer
    from icm.backends.response_cache import CachedLabelScorer, ResponseCache

    class Fixed(LabelScorer):
        label_words = ("True", "False")
        model_id = "fixed"

        def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
            return [(-0.5, -1.5)] * len(prompts)

    cache = ResponseCache(tmp_path / "c.sqlite")
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count = {pages}")
    scorer = CachedLabelScorer(Fixed(), cache)
    prompts = [f"claim {i} " + "x" * 200 for i in range(500)]
    assert scorer.score_prompts(prompts) == [(-0.5, -1.5)] * 500
    assert scorer.score_prompts(prompts[:3]) == [(-0.5, -1.5)] * 3  # asked again, no error
    [warning] = scorer.warnings
    assert f"response cache {tmp_path / 'c.sqlite'}: cannot store answers" in warning
    assert "database or disk is full" in warning
    cache.close()


def test_a_full_disk_under_the_cache_for_real(
    fake_server: Any, small_tmpfs: Path, tmp_path: Path
) -> None:
    from icm.backends.response_cache import ResponseCache

    path = small_tmpfs / "responses.sqlite"
    ResponseCache(path).close()
    fill_leaving(small_tmpfs, 40)  # room to open it (its WAL), not to store 194 answers
    server = fake_server(lambda n, p: (200, GOOD))
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", "run", "--model", "fake-model", "--base-url",
         server.url, "--size", "all", "--K", "20", "--quiet", "--out", str(tmp_path / "run"),
         "--cache", str(path)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"response cache {path}: cannot store answers" in r.stderr


# ------------------------------------------------------------ resuming


@pytest.fixture(scope="module")
def finished_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "done"
    r = subprocess.run(
        [sys.executable, "-m", "icm.cli", *QUICK[:-1], "--size", "30", "--batch_size", "10",
         "--quiet", "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def finished_run(finished_run_template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "done"
    shutil.copytree(finished_run_template, out)
    return out


def test_a_completed_run_without_state_json_rebuilds_cut_labels_from_batches(
    capsys: pytest.CaptureFixture[str], finished_run: Path, tmp_path: Path
) -> None:
    """state.json deleted and labels.jsonl cut short: `--resume` said "outputs match its
    checkpoint; nothing to do" while `icm export` refused and sent the user to that resume."""
    labels = finished_run / "labels.jsonl"
    good = labels.read_text()
    (finished_run / "state.json").unlink()
    labels.write_text("".join(good.splitlines(keepends=True)[:7]))
    r = icm_in_process(capsys, "run", "--resume", str(finished_run), "--quiet")
    assert r.returncode == 0 and "rebuilt labels.jsonl" in r.stderr, r.stderr
    assert labels.read_text() == good
    out = tmp_path / "sft.jsonl"
    r = icm_in_process(capsys, "export", str(finished_run), "--format", "sft", "--out", str(out))
    assert r.returncode == 0, r.stderr


def test_a_completed_run_without_any_checkpoint_says_its_cut_labels_are_lost(
    capsys: pytest.CaptureFixture[str], finished_run: Path
) -> None:
    labels = finished_run / "labels.jsonl"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:7]))
    (finished_run / "state.json").unlink()
    (finished_run / "batches.jsonl").unlink()
    line = one_error_line(icm_in_process(capsys, "run", "--resume", str(finished_run)))
    assert f"{labels}: holds 7 claims, but the run has 30" in line
    assert "cannot be rebuilt: the labels are lost" in line


def test_edited_gold_labels_update_the_agreement_with_the_labels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Only the gold labels edited, then the completed run resumed: labels.jsonl was
    rewritten with the new gold while metrics.json kept the agreement with the old."""
    claims = tmp_path / "claims.jsonl"
    rows = [{"id": f"c{i}", "claim": f"claim {i}", "label": i % 2 == 0} for i in range(8)]
    claims.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    r = icm_in_process(capsys, *QUICK, "--testbed", str(claims), "--out", str(out))
    assert r.returncode == 0, r.stderr
    before = json.loads((out / "metrics.json").read_text())["agreement_with_gold"]
    for row in rows:
        row["label"] = not row["label"]  # every gold label flipped
    claims.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = icm_in_process(capsys, "run", "--resume", str(out), "--quiet")
    assert r.returncode == 0 and "rebuilt labels.jsonl, metrics.json" in r.stderr, r.stderr
    after = json.loads((out / "metrics.json").read_text())["agreement_with_gold"]
    assert after == pytest.approx(1 - before)
    labelled = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert sum(r["label"] == r["gold"] for r in labelled) / len(labelled) == pytest.approx(after)
    assert "nothing to do" in icm_in_process(capsys, "run", "--resume", str(out)).stderr


def test_a_resume_after_a_failure_before_the_first_checkpoint_keeps_its_costs(
    capsys: pytest.CaptureFixture[str],
    fake_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that failed before its first checkpoint, then resumed: metrics.json lost the
    failed execution (its requests, its retries)."""
    failing = [True]
    server = fake_server(
        lambda n, p: (500, {"error": {"message": "down"}}) if failing[0] else (200, GOOD)
    )
    monkeypatch.setenv("ICM_RETRIES", "1")
    monkeypatch.setenv("ICM_BACKOFF", "0.01")
    out = tmp_path / "run"
    args = ("run", "--model", "fake-model", "--base-url", server.url, "--size", "4", "--K", "3",
            "--cache", "off", "--quiet", "--out", str(out))  # fmt: skip
    assert icm_in_process(capsys, *args).returncode == 2
    assert not (out / "state.json").exists()  # failed before its first checkpoint
    first = json.loads((out / "metrics.json").read_text())["segments"]
    assert [s["status"] for s in first] == ["failed"] and first[0]["backend"]["retries"] >= 1
    failing[0] = False
    r = icm_in_process(capsys, "run", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert [s["status"] for s in m["segments"]] == ["failed", "completed"]
    assert m["segments"][0] == first[0]
    assert m["backend"]["retries"] == sum(s["backend"]["retries"] for s in m["segments"])


# ------------------------------------------------------------ the model, before the run


@pytest.mark.parametrize("case", ["name-without-server", "text-file", "empty-folder", "no-extra"])
def test_a_model_flag_that_cannot_work_is_refused_before_the_run_directory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """These made their run directory first, then failed with "continue with: icm run
    --resume DIR", a resume that failed the same way (and the directory blocked --out)."""
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("not a model\n")
    (tmp_path / "folder").mkdir()
    flags, expected = {
        "name-without-server": (
            ["--model", "gpt-4"],
            "--model gpt-4: a model name needs --base-url",
        ),
        "text-file": (["--model-path", str(not_a_model)], "is not a GGUF model file"),
        "empty-folder": (["--model-path", str(tmp_path / "folder")], "is a folder, but neither"),
        "no-extra": (["--iterative"], "trl not installed"),
    }[case]
    if case == "no-extra":  # as without the finetune extra: `import trl` fails
        monkeypatch.setitem(sys.modules, "trl", None)
    out = tmp_path / "run"
    r = icm_in_process(capsys, "run", *flags, "--size", "8", "--K", "5", "--quiet",
                       "--out", str(out))  # fmt: skip
    line = one_error_line(r)
    assert expected in line and "--resume" not in r.stderr
    assert not out.exists()


# ------------------------------------------------------------ vLLM's context, warnings


def vllm_like(fake_server: Any, max_model_len: int, tokenize: bool = True) -> Any:
    """A server that reports max_model_len in GET /v1/models, as vLLM does, and counts
    tokens on POST /tokenize (here one per 4 characters)."""
    holder: list[Any] = []

    def reply(n: int, path: str) -> tuple[int, Any]:
        if path == "/tokenize":
            if not tokenize:
                return 404, {"detail": "Not Found"}
            return 200, {"count": len(holder[0].last_body["prompt"]) // 4}
        return 200, GOOD

    models = {"object": "list", "data": [{"id": "fake-model", "max_model_len": max_model_len}]}
    holder.append(fake_server(reply, models=(200, models)))
    return holder[0]


RUN_ON = (
    *("run", "--model", "fake-model", "--testbed", "capitals", "--size", "all"),
    *("--batch_size", "16", "--mp", "exact", "--K", "3", "--cache", "off", "--quiet"),
)


def test_prompts_longer_than_vllms_max_model_len_are_refused_before_the_search(
    capsys: pytest.CaptureFixture[str], fake_server: Any, tmp_path: Path
) -> None:
    """docs/backends.md started vLLM with --max-model-len 8192; `--preset original`
    truthfulqa prompts are ~8.6k tokens: the run died mid-way on vLLM's 400."""
    server = vllm_like(fake_server, max_model_len=200)
    out = tmp_path / "run"
    r = icm_in_process(capsys, *RUN_ON, "--base-url", server.url, "--out", str(out))
    line = one_error_line(r)
    found = re.search(r"the longest prompt this run will build is (\d+) tokens", line)
    assert found and int(found.group(1)) > 200, line
    assert "more than the server's max_model_len 200" in line
    assert f"--max-model-len {int(found.group(1)) + 1} or more" in line
    assert server.posts == sum(1 for p in server.paths if p == "/tokenize")  # none scored
    # Refused before the run directory is made: no failed run is left to resume.
    assert not out.exists()
    server.paths.clear()
    ok = vllm_like(fake_server, max_model_len=100_000)
    r = icm_in_process(capsys, *RUN_ON, "--base-url", ok.url, "--out", str(tmp_path / "ok"))
    assert r.returncode == 0, r.stderr


def test_scoring_warnings_reach_the_log_and_metrics(
    capsys: pytest.CaptureFixture[str], fake_server: Any, tmp_path: Path
) -> None:
    """Warnings said while scoring (no prompt-token details, fewer logprobs than asked,
    prompts that could not be counted) reached only stderr."""
    server = vllm_like(fake_server, max_model_len=100_000, tokenize=False)
    out = tmp_path / "run"
    r = icm_in_process(capsys, *RUN_ON, "--base-url", server.url, "--out", str(out))
    assert r.returncode == 0, r.stderr
    log = (out / "log.txt").read_text()
    warnings = json.loads((out / "metrics.json").read_text())["warnings"]
    for said in ("prompt_tokens_details", "of the 20 logprobs", "cannot count prompt tokens"):
        assert said in r.stderr and f"warning: {server.url}" in log
        assert any(said in line for line in log.splitlines() if "warning:" in line), said
        assert any(said in w for w in warnings), said
    # Said before the run directory existed (the prompt-length check), carried into the
    # log once.
    assert log.count("cannot count prompt tokens") == 1, log


def test_a_dead_endpoint_among_several_is_said_logged_and_kept_in_metrics(
    capsys: pytest.CaptureFixture[str], fake_server: Any, tmp_path: Path
) -> None:
    """A dead --base-url among live ones was routed around without a word."""
    from tests.test_backend_failures import free_port

    live = fake_server(lambda n, p: (200, GOOD))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "run"
    r = icm_in_process(capsys, *RUN_ON, "--base-url", live.url, "--base-url", dead,
                       "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    said = f"{dead} refuses connections"
    assert said in r.stderr and said in (out / "log.txt").read_text()
    assert any(said in w for w in json.loads((out / "metrics.json").read_text())["warnings"])


# ------------------------------------------------------------ the chat baseline


def test_the_chat_baseline_sends_requests_concurrently_with_the_logprobs_asked(
    fake_server: Any,
) -> None:
    """It sent one request at a time. Each request here waits (up to 60 s) for a second
    one to arrive: concurrent requests pass at once, one at a time they could not."""
    from icm.backends.chat import ChatScorer

    pairs = threading.Barrier(2, timeout=60)

    def reply(n: int, path: str) -> tuple[int, Any]:
        pairs.wait()  # BrokenBarrierError (a failed answer) if no second request comes
        return 200, CHAT_GOOD

    server = fake_server(reply)
    with ChatScorer(server.url, "m", logprobs=5, concurrency=4, retries=0) as scorer:
        scores = scorer.score_prompts([f"Claim: {i}\nI think this claim is " for i in range(8)])
    assert len(scores) == 8 and scorer.stats.requests == 8
    assert server.last_body["top_logprobs"] == 5


def test_icm_eval_gives_the_chat_baseline_its_timeout_logprobs_and_concurrency(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`icm eval --labels zero-shot-chat --timeout 7 --logprobs 5` ignored both flags (the
    chat client used 120 s and 20)."""
    import icm.backends.chat
    from icm.errors import ConfigError

    given: dict[str, Any] = {}

    def recording_chat_scorer(*args: Any, **kwargs: Any) -> None:
        given.update(kwargs)
        raise ConfigError("stop here: the options are recorded")

    monkeypatch.setattr(icm.backends.chat, "ChatScorer", recording_chat_scorer)
    r = icm_in_process(capsys, "eval", "--labels", "zero-shot-chat", "--chat-base-url",
                       "http://127.0.0.1:9/v1", "--model", "m", "--base-url",
                       "http://127.0.0.1:9/v1", "--timeout", "7", "--logprobs", "5",
                       "--concurrency", "3", "--testbed", "capitals")  # fmt: skip
    assert "stop here" in one_error_line(r)
    assert (given["timeout"], given["logprobs"], given["concurrency"]) == (7.0, 5, 3)


# ------------------------------------------------------------ a server killed twice


def test_a_restarted_server_that_dies_again_is_named_not_cannot_connect(fake_server: Any) -> None:
    """The embedded server killed twice during a run: requests that were in flight at the
    first kill had spent their one revive (finding the restarted server alive), so at the
    second they gave up "cannot connect ... gave up after 6 attempts" instead of the
    documented "exited ... again after a restart". Here `revive` plays icm's embedded
    server: the first call restarts it (a new URL), which is killed at once; the second
    finds it dead again."""
    from icm.backends.completions import CompletionsScorer
    from icm.errors import BackendError

    first = fake_server(lambda n, p: (200, GOOD), keep_alive=False)
    second = fake_server(lambda n, p: (200, GOOD), keep_alive=False)
    calls: list[str] = []

    def revive(base_url: str) -> str:
        calls.append(base_url)
        if len(calls) == 1:
            second.close()  # the restarted server, killed before the request gets there
            return second.url
        raise BackendError("embedded llama.cpp server exited with code -9 again after a restart")

    with CompletionsScorer([first.url], "fake-model", retry=FAST_RETRY, revive=revive) as scorer:
        first.close()
        with pytest.raises(BackendError, match="again after a restart"):
            scorer.score_prompts([PROMPT])
    assert calls == [first.url, second.url]
