"""The run directory: everything needed to reproduce, resume or report a run.

config.json     resolved configuration, seed, versions, git hash, command line
labels.jsonl    one line per claim: id, label, score, group, batch, gold (if known), prompt
trace.jsonl     one line per search step
metrics.json    summary figures, versions, git hash
trace.png       U, agreement with gold, accept rate and temperature over iterations
log.txt         what the run printed
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from icm.errors import ConfigError


def git_hash(where: Path | None = None, *, short: bool = False) -> str | None:
    """The commit of the checkout at `where` (default: the one this code runs from), with
    "-dirty" when tracked files differ from it; None outside a checkout."""
    here = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", *(["--short"] if short else []), "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, Any]:
    from icm import __version__

    info: dict[str, Any] = {
        "icm": __version__,
        "git": git_hash(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import llama_cpp

        info["llama_cpp_python"] = getattr(llama_cpp, "__version__", None)
    except ImportError:
        pass
    return info


@contextlib.contextmanager
def naming_path(path: Path | str) -> Iterator[None]:
    """An OSError from writing `path` that names no file is raised again naming it: a full
    disk fails in write, flush or fsync, whose errors carry no file name, and the one-line
    error (`icm: error: PATH: No space left on device`) must say where."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it
    (os.umask can only be read by setting it, which races with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file, fsync and rename: a reader never sees half a file.
    The file gets the mode any new file gets (0666 less the umask), as the run's other
    files do, not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with naming_path(path), os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json_object(path: Path) -> dict[str, Any]:
    """A run file that must hold a JSON object, or a ConfigError naming it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read it ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return data


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    from icm.errors import DataError

    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg})", path=path, line=n) from None
    return rows


def default_run_dir(testbed: str, parent: Path = Path("runs")) -> Path:
    """A new, empty directory runs/<testbed>-<time>, created here. Runs started in the same
    second (seeds launched in parallel) each get their own: mkdir fails for all but one
    of them, and the others take the next free suffix (-2, -3, ...)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = (
        Path(testbed).stem if ("/" in testbed or testbed.endswith((".jsonl", ".csv"))) else testbed
    )
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = parent / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as e:
        raise ConfigError(
            f"--out: cannot create a run directory in '{parent}' ({e.strerror or e}); "
            "give one with --out"
        ) from None
    raise ConfigError(f"--out: '{parent}' has no free name for {name}-{stamp}; give --out")


def prepare_run_dir(path: Path, flag: str = "--out") -> Path:
    """Create the directory (or check it is writable) before any work is done."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"  # per process: runs may probe at once
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{flag}: cannot write to '{path}' ({e.strerror or e})") from None
    return path


LOCK_FILE = ".lock"
# The files `icm run` writes in a run directory (the checkpoint's, icm.checkpoint, too).
RUN_FILES = (
    "config.json",
    "state.json",
    "batches.jsonl",
    "trace.jsonl",
    "labels.jsonl",
    "metrics.json",
    "log.txt",
    "trace.png",
    LOCK_FILE,
)


def refuse_run_file(out: Path, flag: str = "--out") -> None:
    """An output path that is one of a run directory's own files (`--out RUN/labels.jsonl`)
    would overwrite what the run computed: refused in one line."""
    target = out.resolve()
    if target.name in RUN_FILES and (target.parent / "config.json").is_file():
        raise ConfigError(
            f"{flag}: '{out}' is the {target.name} of the run directory '{out.parent}'; "
            "writing there would overwrite it: give another path"
        )


@contextlib.contextmanager
def run_dir_lock(path: Path) -> Iterator[None]:
    """Hold the run directory for one execution (start or resume) of its run: a second
    `icm run --out` or `--resume` on it while this one lives is refused. The lock is an
    flock, so it goes with the process, however it ends (even SIGKILL)."""
    from icm.file_lock import LockHeld, exclusive_lock

    with contextlib.ExitStack() as stack:
        try:  # errors of taking the lock only, not of the run it then guards
            stack.enter_context(exclusive_lock(path / LOCK_FILE, wait=False))
        except LockHeld as e:
            owner = f" ({e.owner})" if e.owner else ""
            raise ConfigError(
                f"{path}: another icm run is using this run directory{owner}; wait for it to "
                "end or choose another --out"
            ) from None
        except OSError as e:  # e.g. a read-only directory: no lock file
            raise ConfigError(
                f"{path}: cannot write to the run directory ({e.strerror or e})"
            ) from None
        yield


class RunLog:
    """Appends to log.txt and echoes to stderr."""

    def __init__(self, run_dir: Path, echo: bool = True) -> None:
        self.path = run_dir / "log.txt"
        self.echo = echo

    def __call__(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with naming_path(self.path), self.path.open("a", encoding="utf-8") as f:
            f.write(f"[{stamp}] {message}\n")
        if self.echo:
            print(message, file=sys.stderr, flush=True)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- a finished run


@dataclass
class FinishedRun:
    """What `icm export`, `icm finetune`, `icm eval --labels` and `icm analyze` read of a run
    directory: config.json, labels.jsonl (checked line by line) and metrics.json."""

    run_dir: Path
    config: dict[str, Any]  # config.json as written: "config", "testbed", "versions", ...
    metrics: dict[str, Any]  # metrics.json ({} when the run wrote none)
    all_rows: list[dict[str, Any]]  # labels.jsonl: every claim of the run, in order

    @property
    def settings(self) -> dict[str, Any]:
        """The run's resolved RunConfig fields (config.json's "config")."""
        return dict(self.config.get("config") or {})

    @property
    def testbed(self) -> str:
        return str(self.settings.get("testbed", self.config.get("testbed", {}).get("name", "")))

    @property
    def split(self) -> str:
        return str(self.settings.get("split", self.config.get("testbed", {}).get("split", "")))

    @property
    def model(self) -> str | None:
        model = self.settings.get("model")
        return None if model is None else str(model)

    @property
    def label_words(self) -> tuple[str, str]:
        words = self.config.get("testbed", {}).get("label_words") or ["True", "False"]
        return str(words[0]), str(words[1])

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The labelled claims' rows."""
        return [r for r in self.all_rows if isinstance(r.get("label"), bool)]

    @property
    def n_unlabeled(self) -> int:
        return len(self.all_rows) - len(self.rows)

    @property
    def labels(self) -> dict[str, bool | None]:
        return {r["id"]: r.get("label") for r in self.all_rows}

    @property
    def verdict(self) -> str | None:
        """The run's own end-of-run verdict (icm.run_summary): ok, or its problems joined
        by '+' (degenerate, inconsistent, below-zero-shot, below-baseline); None for a run
        made before runs wrote one."""
        verdict = self.metrics.get("verdict")
        return verdict if isinstance(verdict, str) else None

    def quality_warning(self) -> str | None:
        """One line for the commands that use this run's labels (eval, export, finetune,
        analyze) when the run's own summary flagged them; None when it did not."""
        if self.verdict in (None, "ok"):
            return None
        kinds = set(str(self.verdict).split("+"))
        # The first warning behind the verdict (others, e.g. "unlabeled", may come first).
        warnings = [str(w) for w in self.metrics.get("warnings") or []]
        behind = [w for w in warnings if w.split(":", 1)[0] in kinds] or warnings
        first = behind[0].split(";", 1)[0] if behind else ""
        return f"{self.run_dir}: the run's labelling ended {self.verdict}" + (
            f" ({first})" if first else ""
        )


def read_finished_run(
    run_dir: Path, *, need: str = "a finished `icm run` directory"
) -> FinishedRun:
    """Read and check a run directory's outputs; each problem is one DataError naming the
    file, line and field. labels.jsonl must hold every claim of the run once (a file cut
    short would otherwise pass as a smaller run)."""
    from icm.errors import DataError

    labels_path = run_dir / "labels.jsonl"
    config_path = run_dir / "config.json"
    for path in (labels_path, config_path):
        if not path.is_file():
            raise DataError(f"not found (is {run_dir} {need}?)", path=path)
    config = read_json_object(config_path)
    if not isinstance(config.get("config"), dict):
        raise DataError("missing or not an object", path=config_path, field="config")
    for key in ("testbed", "split"):
        if not isinstance(config["config"].get(key), str):
            raise DataError("missing or not a string", path=config_path, field=f"config.{key}")
    if not isinstance(config.get("testbed", {}), dict):
        raise DataError("not an object", path=config_path, field="testbed")
    metrics_path = run_dir / "metrics.json"
    metrics = read_json_object(metrics_path) if metrics_path.exists() else {}
    rows = read_jsonl(labels_path)
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError("not a JSON object", path=labels_path, line=n)
        cid = row.get("id")
        if not isinstance(cid, str) or not cid:
            raise DataError("missing, empty or not a string", path=labels_path, line=n, field="id")
        if cid in seen:
            raise DataError(f"claim '{cid}' appears twice", path=labels_path, line=n, field="id")
        seen.add(cid)
        if not isinstance(row.get("prompt"), str):
            raise DataError("missing or not a string", path=labels_path, line=n, field="prompt")
        label = row.get("label")
        if label is not None and not isinstance(label, bool):
            raise DataError(
                f"expected true, false or null, got {label!r}",
                path=labels_path,
                line=n,
                field="label",
            )
    n_claims = config.get("testbed", {}).get("n_claims")
    if isinstance(n_claims, int) and len(rows) != n_claims:
        raise DataError(
            f"holds {len(rows)} claims, but the run has {n_claims}; rebuild it from the "
            f"checkpoint with `icm run --resume {run_dir}`",
            path=labels_path,
        )
    return FinishedRun(run_dir, config, metrics, rows)
