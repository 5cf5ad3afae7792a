"""The durable response cache: exact keys, damage recovery, two processes at once."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from icm.backends.base import LabelScorer
from icm.backends.response_cache import CachedLabelScorer, ResponseCache


def answer(prompt: str) -> tuple[float, float]:
    h = hashlib.sha256(prompt.encode()).digest()
    return -h[0] / 100.0, -h[1] / 100.0


class CountingScorer(LabelScorer):
    model_id = "test-model"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        self.asked.extend(prompts)
        self.stats.requests += len(prompts)
        return [answer(p) for p in prompts]


def test_only_misses_reach_the_model_and_keys_are_exact(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner = CountingScorer()
    scorer = CachedLabelScorer(inner, cache)
    assert scorer.score_prompts(["a", "b", "a"]) == [answer("a"), answer("b"), answer("a")]
    assert inner.asked == ["a", "b"]  # the duplicate is asked once
    assert scorer.score_prompts(["b", "c"]) == [answer("b"), answer("c")]
    assert inner.asked == ["a", "b", "c"]
    assert inner.stats.cache_hits == 2
    # Another model, other label words or one character more: different keys.
    ident = inner.cache_identity()
    assert ResponseCache.key(ident, "a") != ResponseCache.key({**ident, "model_id": "other"}, "a")
    assert ResponseCache.key(ident, "a") != ResponseCache.key(
        {**ident, "label_words": ["A", "B"]}, "a"
    )
    assert ResponseCache.key(ident, "a") != ResponseCache.key(ident, "a ")
    other = CountingScorer()
    other.model_id = "other-model"
    CachedLabelScorer(other, cache).score_prompts(["a"])
    assert other.asked == ["a"]
    # It persists across instances.
    cache.close()
    again = CountingScorer()
    assert CachedLabelScorer(again, ResponseCache(tmp_path / "c.sqlite")).score_prompts(["c"]) == [
        answer("c")
    ]
    assert again.asked == []


def test_a_damaged_cache_is_set_aside_not_fatal(tmp_path: Path, capsys) -> None:
    # A database damaged after its header (here: garbage pages behind a real header).
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"SQLite format 3\x00" + b"this is not a database" * 100)
    cache = ResponseCache(garbage)
    assert "damaged" in capsys.readouterr().err
    assert len(list(tmp_path.glob("garbage.sqlite.corrupt-*"))) == 1
    CachedLabelScorer(CountingScorer(), cache).score_prompts(["x"])
    assert cache.stats()["responses"] == 1
    cache.close()

    # A real cache, truncated half-way (a crash while copying it, a full disk).
    good = tmp_path / "good.sqlite"
    c = ResponseCache(good)
    CachedLabelScorer(CountingScorer(), c).score_prompts([f"p{i}" * 50 for i in range(3000)])
    c.close()
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    Path(str(good) + "-wal").unlink(missing_ok=True)
    c = ResponseCache(good)
    err = capsys.readouterr().err
    assert "damaged" in err and "set it aside" in err
    inner = CountingScorer()
    assert CachedLabelScorer(inner, c).score_prompts(["p1" * 50]) == [answer("p1" * 50)]


WORKER = """
import sys, hashlib
from icm.backends.base import LabelScorer
from icm.backends.response_cache import CachedLabelScorer, ResponseCache
def answer(p):
    h = hashlib.sha256(p.encode()).digest()
    return -h[0] / 100.0, -h[1] / 100.0
class S(LabelScorer):
    model_id = "m"
    def score_prompts(self, prompts):
        return [answer(p) for p in prompts]
cache = ResponseCache(sys.argv[1])
scorer = CachedLabelScorer(S(), cache)
offset = int(sys.argv[2])
for start in range(0, 3000, 50):
    prompts = [f"prompt {i}" for i in range(offset + start, offset + start + 50)]
    got = scorer.score_prompts(prompts)
    assert got == [answer(p) for p in prompts], "wrong hit"
print("ok")
"""


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(offset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 1500)  # half of each one's prompts overlap the other's
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
        # Contention while both open (or create) the file is not damage: nothing set aside.
        assert "damaged" not in err, err
    assert not list(tmp_path.glob("*.corrupt-*"))
    cache = ResponseCache(path)
    assert cache.stats()["responses"] == 4500


def test_cache_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    c = ResponseCache(path)
    CachedLabelScorer(CountingScorer(), c).score_prompts(["a", "b"])
    c.close()
    run = [sys.executable, "-m", "icm.cli", "cache"]
    r = subprocess.run(
        [*run, "stats", "--cache", str(path)], capture_output=True, text=True, check=True
    )
    assert json.loads(r.stdout)["responses"] == 2
    r = subprocess.run(
        [*run, "clear", "--cache", str(path)], capture_output=True, text=True, check=True
    )
    assert "removed 2 responses" in r.stdout
    r = subprocess.run(
        [*run, "stats", "--cache", str(path)], capture_output=True, text=True, check=True
    )
    assert json.loads(r.stdout)["responses"] == 0


def test_a_file_that_never_was_a_cache_is_refused_and_left_alone(tmp_path: Path) -> None:
    """`--cache labels.jsonl` (a typo) once moved the user's file to labels.jsonl.corrupt-<time>
    and started an empty cache under its name."""
    from icm.errors import ConfigError

    theirs = tmp_path / "labels.jsonl"
    theirs.write_text('{"id": "a", "label": true}\n')
    with pytest.raises(
        ConfigError, match=r"is not a response cache \(not an SQLite file\); it is left"
    ):
        ResponseCache(theirs)
    assert theirs.read_text() == '{"id": "a", "label": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["labels.jsonl"]


def test_a_bad_cache_dir_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --cache given, the error named --cache; the place came from $ICM_CACHE_DIR."""
    from icm.backends.response_cache import cache_wrapper
    from icm.errors import ConfigError

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("ICM_CACHE_DIR", str(a_file))
    env = r"^\$ICM_CACHE_DIR: cannot open the response cache"
    with pytest.raises(ConfigError, match=env), cache_wrapper("default"):
        pass
    with pytest.raises(ConfigError, match=r"^--cache: "), cache_wrapper(str(a_file)):
        pass
