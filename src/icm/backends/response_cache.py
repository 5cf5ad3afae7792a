"""A durable cache of model responses (SQLite), shared across runs and processes.

Keyed by what determines a response: the backend's identity (model, label words, top-k,
prompt handling) and the exact prompt. A resumed or repeated run re-asks nothing the model
already answered. WAL mode lets several `icm` processes read and write one file at once.
A damaged file is set aside (renamed, with a warning) and a fresh cache started: the cache
can cost time, never a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from icm.backends.base import LabelScorer, WarningSource
from icm.errors import ConfigError
from icm.file_lock import exclusive_lock
from icm.locations import CACHE_ENV, response_cache_path

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 file
SCHEMA_VERSION = 1

# SQLite result codes that mean the file itself is bad (not that someone else holds a lock).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
# ... and those that mean it cannot be written now (a full disk, an I/O error, read-only).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


class CacheDamage(sqlite3.DatabaseError):
    """The file opened but is not a cache this version can trust (schema, integrity)."""


def _is_damage(e: sqlite3.DatabaseError) -> bool:
    if isinstance(e, CacheDamage):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _is_write_failure(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL)


def default_cache_path() -> Path:
    return response_cache_path()


def default_cache_source() -> str:
    """What set the default cache's place, for messages: the user gave no --cache."""
    return f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "--cache (default)"


def open_response_cache(setting: str | Path) -> ResponseCache:
    """The cache a `--cache` setting names: 'default' (default_cache_path(), errors naming
    what placed it) or a path."""
    if str(setting) == "default":
        return ResponseCache(default_cache_path(), source=default_cache_source(), owned=True)
    return ResponseCache(setting)


def _warn(message: str) -> None:
    print(f"icm: warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def cache_wrapper(setting: str) -> Iterator[Callable[[LabelScorer], LabelScorer]]:
    """A `--cache` setting as a wrapper for scorers: unchanged for 'off', else answered
    from the response cache ('default': default_cache_path(), or a path), which is closed
    on exit."""
    if setting == "off":
        yield lambda scorer: scorer
        return
    cache = open_response_cache(setting)
    try:
        yield lambda scorer: CachedLabelScorer(scorer, cache)
    finally:
        cache.close()


class ResponseCache(WarningSource):
    def __init__(self, path: str | Path, *, source: str = "--cache", owned: bool = False) -> None:
        self.path = Path(path)
        self.source = source  # what chose the path, named in error messages
        # The default cache's file is icm's own, so any damage to it, its header included,
        # is set aside; a file the user named may be theirs (see below).
        self.owned = owned
        self._start_warnings()
        self._storing = True  # False after a write failed: a full disk costs time only
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise ConfigError(
                f"{self.source}: '{self.path}' is a directory; give a file in it "
                f"(e.g. {self.path / 'responses.sqlite'}) or --cache off"
            )
        try:
            self._db = self._open_checked()
        except OSError as e:  # the folder or the lock file cannot be created (read-only)
            raise ConfigError(
                f"{self.source}: cannot open the response cache '{self.path}' "
                f"({e.strerror or e}: {e.filename}); give another path or --cache off"
            ) from None

    # -- opening, with damage detection ---------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 60000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, model TEXT NOT NULL,"
            " logp_true REAL NOT NULL, logp_false REAL NOT NULL, created REAL NOT NULL)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise CacheDamage(f"schema version {row and row[0]}, expected {SCHEMA_VERSION}")
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise CacheDamage(f"integrity check failed: {check}")
        return db

    def _open_checked(self) -> sqlite3.Connection:
        # Several processes may open (or create) one cache at the same moment. Opening is
        # serialized by an advisory lock on a sidecar file so that no process sees another's
        # half-created file, and only real damage (corrupt / not a database / failed checks)
        # sets the file aside: "database is locked" is contention, never damage.
        self._refuse_a_file_that_is_not_sqlite()  # before the lock: no sidecar beside it
        with exclusive_lock(Path(str(self.path) + ".lock")):
            try:
                return self._connect()
            except sqlite3.DatabaseError as e:
                if not _is_damage(e):
                    raise ConfigError(
                        f"{self.source}: cannot open the response cache '{self.path}' ({e}); "
                        "give another path or --cache off"
                    ) from None
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(self.path) + suffix)
                    if src.exists():
                        src.replace(Path(str(aside) + suffix))
                _warn(
                    f"response cache {self.path} is damaged ({e}); set it aside as {aside} "
                    "and started an empty cache"
                )
                return self._connect()

    def _refuse_a_file_that_is_not_sqlite(self) -> None:
        """Damage is set aside, but a file that never was a database (`--cache labels.jsonl`,
        a typo) is the user's, not the cache's: refused, left where it is. Not so for the
        default cache: a damaged header there is damage (it blocked every run, and `icm
        cache clear`), set aside like any other."""
        if self.owned:
            return
        try:
            with self.path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except (FileNotFoundError, IsADirectoryError):
            return  # created, or refused with its own message, by _connect
        if head and head != SQLITE_HEADER[: len(head)]:
            raise ConfigError(
                f"{self.source}: '{self.path}' is not a response cache (not an SQLite file); it is "
                "left as it is: give another path, or --cache off"
            )

    # -- use ---------------------------------------------------------------------------
    @staticmethod
    def key(identity: dict[str, Any], prompt: str) -> str:
        blob = json.dumps({"identity": identity, "prompt": prompt}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, logp_true, logp_false FROM responses WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                out.update({k: (t, f) for k, t, f in rows})
        return out

    def put_many(self, model: str, items: Sequence[tuple[str, tuple[float, float]]]) -> None:
        """Store answers. A write the disk refuses (full, I/O error, read-only) is said once
        and storing stops: the answers are the caller's still, the cache costs time only."""
        now = time.time()
        with self._lock:
            if not self._storing:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                        [(k, model, t, f, now) for k, (t, f) in items],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite ends the transaction itself on some errors (a full disk):
                    # a ROLLBACK then fails and would hide the error that matters.
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                if not _is_write_failure(e):
                    raise
                self._storing = False
                message = (
                    f"response cache {self.path}: cannot store answers ({e}); going on "
                    "without storing them (answers stored before are still used)"
                )
                self.warn(message)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            n = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            models = self._db.execute(
                "SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY 2 DESC"
            ).fetchall()
        size = sum(
            Path(str(self.path) + s).stat().st_size
            for s in ("", "-wal")
            if Path(str(self.path) + s).exists()
        )
        return {"path": str(self.path), "responses": n, "bytes": size, "models": dict(models)}

    def clear(self) -> int:
        with self._lock:
            n = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            self._db.execute("DELETE FROM responses")
            self._db.execute("VACUUM")
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedLabelScorer(LabelScorer):
    """Answers from the response cache where it can; asks the wrapped scorer the rest."""

    def __init__(self, inner: LabelScorer, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache
        self.label_words = inner.label_words
        self.model_id = inner.model_id
        self.stats = inner.stats  # one set of counts for the run
        self.identity = inner.cache_identity()

    def cache_identity(self) -> dict[str, Any]:
        return self.identity

    @property
    def warnings(self) -> list[str]:
        return [*getattr(self.inner, "warnings", []), *self.cache.warnings]

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        keys = [ResponseCache.key(self.identity, p) for p in prompts]
        found = self.cache.get_many(keys)
        missing: dict[str, str] = {}
        for k, p in zip(keys, prompts, strict=True):
            if k not in found:
                missing.setdefault(k, p)
        self.stats.cache_hits += len(prompts) - len(missing)
        if missing:
            scored = self.inner.score_prompts(list(missing.values()))
            fresh = list(zip(missing.keys(), scored, strict=True))
            self.cache.put_many(self.model_id, fresh)
            found.update(fresh)
        return [found[k] for k in keys]

    def close(self) -> None:
        self.inner.close()
