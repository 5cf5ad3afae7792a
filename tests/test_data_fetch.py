"""`icm data fetch` against a local HTTP server (this machine has no internet): files land
in a cache laid out like a data directory, checksums are verified, a mismatch or a failed
download names the file and leaves nothing behind, and the cache works as a data dir."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from icm import cli
from icm.data.data_dir import resolve_data_dir
from icm.data.fetch import fetch_file
from icm.data.manifest import DATASETS, Dataset, RemoteFile
from icm.errors import DataError
from icm.testbeds import LoadOptions, get_testbed

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mirror() -> Iterator[str]:
    """A local server of the shared data: the same layout as a data directory."""
    if not (SHARED_DATA / "SHA256SUMS").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    yield from serve(SHARED_DATA)


@pytest.fixture
def fake_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A served folder and a 'fake' dataset whose one file should read b'hello\\n'."""
    folder = tmp_path / "served"
    (folder / "fake").mkdir(parents=True)
    sha = hashlib.sha256(b"hello\n").hexdigest()
    ds = Dataset("fake", "a test dataset", "none", (RemoteFile("fake/a.txt", "unused", sha),))
    monkeypatch.setitem(DATASETS, "fake", ds)
    for url in serve(folder):
        yield folder, url


def fetch(*args: str) -> int:
    return cli.main(["data", "fetch", *args])


def test_fetch_downloads_verifies_and_then_uses_the_cache(
    mirror: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert (
        fetch(
            "machiavelli", "moral_foundations_vignettes", "--cache", str(cache), "--mirror", mirror
        )
        == 0
    )
    out = capsys.readouterr().out
    for name in ("machiavelli", "moral_foundations_vignettes"):
        for f in DATASETS[name].files:
            got = cache / f.path
            assert hashlib.sha256(got.read_bytes()).hexdigest() == f.sha256
            assert f"downloaded {f.path}" in re.sub(r" +", " ", out)
    assert not list(cache.rglob("*.part"))
    assert fetch("machiavelli", "--cache", str(cache), "--mirror", mirror) == 0
    out = capsys.readouterr().out
    assert "downloaded" not in out and out.count("cached") == len(DATASETS["machiavelli"].files)


def test_a_changed_cached_file_is_downloaded_again(
    mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICM_DATA_MIRROR", mirror)  # the environment's mirror is used
    f = DATASETS["machiavelli"].files[-1]
    (tmp_path / f.path).parent.mkdir(parents=True)
    (tmp_path / f.path).write_text("tampered")
    assert fetch_file(f, tmp_path, mirror=mirror, timeout=10, force=False) == "downloaded"
    assert hashlib.sha256((tmp_path / f.path).read_bytes()).hexdigest() == f.sha256
    assert fetch("machiavelli", "--cache", str(tmp_path)) == 0


def test_fetched_cache_is_a_data_directory(
    mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "root" / "data"
    assert fetch("paper_splits", "--cache", str(cache), "--mirror", mirror) == 0
    t = get_testbed("truthfulqa").load("train", LoadOptions(data_dir=cache))
    assert len(t) == 2608
    # With neither --data-dir nor ICM_DATA_DIR, the testbeds read the default cache: the
    # data/ folder of ICM_CACHE_DIR (beside the response cache and the models).
    monkeypatch.delenv("ICM_DATA_DIR", raising=False)
    monkeypatch.setenv("ICM_CACHE_DIR", str(tmp_path / "root"))
    assert resolve_data_dir(None) == cache
    assert len(get_testbed("alpaca").load("test", LoadOptions())) == 256


def test_checksum_mismatch_names_the_file_and_keeps_nothing(
    fake_source: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, url = fake_source
    (folder / "fake" / "a.txt").write_bytes(b"HELLO\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256 mismatch") as e:
        fetch_file(DATASETS["fake"].files[0], cache, mirror=url, timeout=10, force=False)
    assert e.value.path == str(cache / "fake" / "a.txt")
    assert not (cache / "fake" / "a.txt").exists() and not list(cache.rglob("*.part"))
    assert fetch("fake", "--cache", str(cache), "--mirror", url) == 2
    err = capsys.readouterr().err
    assert f"{cache / 'fake' / 'a.txt'}: SHA-256 mismatch" in err
    (folder / "fake" / "a.txt").write_bytes(b"hello\n")
    assert fetch("fake", "--cache", str(cache), "--mirror", url) == 0
    assert (cache / "fake" / "a.txt").read_bytes() == b"hello\n"


def test_missing_file_on_the_server_names_it(fake_source: tuple[Path, str], tmp_path: Path) -> None:
    _, url = fake_source
    with pytest.raises(DataError, match="HTTP 404") as e:
        fetch_file(DATASETS["fake"].files[0], tmp_path, mirror=url, timeout=10, force=False)
    assert e.value.path == str(tmp_path / "fake" / "a.txt")
    assert not list(tmp_path.rglob("a.txt*"))


def test_unreachable_server_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = RemoteFile("fake/a.txt", "unused", "0" * 64)
    with pytest.raises(DataError, match="download failed") as e:
        fetch_file(f, tmp_path, mirror="http://127.0.0.1:9", timeout=5, force=False)
    assert e.value.path == str(tmp_path / "fake" / "a.txt")


def test_unknown_dataset_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch("gsm8", "--cache", "/nonexistent") == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'gsm8'" in err and "Did you mean 'gsm8k'" in err


def test_manifest_matches_the_shared_checksums_and_pins_commits() -> None:
    sums_file = SHARED_DATA / "SHA256SUMS"
    for ds in DATASETS.values():
        for f in ds.files:
            assert f.path.startswith(ds.name + "/")
            assert re.fullmatch(
                r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+", f.url
            )
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)
    if not sums_file.is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    sums = {}
    for line in sums_file.read_text().splitlines():
        sha, path = line.split(maxsplit=1)
        sums[path] = sha
    manifest = {f.path: f.sha256 for ds in DATASETS.values() for f in ds.files}
    assert manifest == sums


def test_data_list_shows_presence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text("{}\n")
    assert cli.main(["data", "list", "--data-dir", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "CHANGED  gsm8k/train.jsonl" in out and "missing  gsm8k/test.jsonl" in out


def test_data_list_of_a_folder_that_is_not_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It listed every dataset file as missing, exit 0."""
    a_file = tmp_path / "data.txt"
    a_file.write_text("x")
    assert cli.main(["data", "list", "--data-dir", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert f"--data-dir: '{a_file}': data directory is a file, not a folder" in err
    monkeypatch.setenv("ICM_DATA_DIR", str(tmp_path / "nope"))
    assert cli.main(["data", "list"]) == 2
    assert "$ICM_DATA_DIR: " in capsys.readouterr().err
