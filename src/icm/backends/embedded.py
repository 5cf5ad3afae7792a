"""The embedded backend: icm's llama.cpp server as a child process on a free loopback port.

The server runs in its own process (and session) so that llama.cpp's threads, memory and
any crash stay out of icm. It never outlives icm: it is stopped (SIGTERM to its process
group, then SIGKILL) on normal exit, on exceptions and on Ctrl-C/SIGTERM; if icm is killed
outright, the kernel kills it (PR_SET_PDEATHSIG, set by the server at start) and a watchdog
thread in the server ends it within a second on systems without that.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from icm.backends.default_model import verified_sha256
from icm.backends.llama_server import DEFAULT_N_CTX, DEFAULT_SLOTS, READY_PREFIX, default_threads
from icm.errors import BackendError, ConfigError

# A big model on a slow disk may take minutes to load.
DEFAULT_START_TIMEOUT = 300.0
STOP_GRACE_SECONDS = 5.0
# How long a server that refused a connection may take to exit before it counts as alive:
# a bound on an event (its exit), not a timing; a live server answers at once.
EXIT_WAIT_SECONDS = 30.0
_READY_LINE = re.compile(re.escape(READY_PREFIX) + r"(\S+)")


class EmbeddedServer:
    """A running server: its URL, process and log. `revive` restarts it once if it died."""

    def __init__(
        self, command: list[str], model_path: Path, log_dir: Path, start_timeout: float
    ) -> None:
        self.command = command
        self.model_path = model_path
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / "server.log"
        self.base_url = ""  # http://127.0.0.1:PORT/v1
        self.restarts = 0
        self.keep_log = False  # a crashed server's log stays for the user to read

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path = self.log_dir / f"server-{self.restarts}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole, not by tty ^C
            )
        print(
            f"icm: embedded llama.cpp server pid {self.process.pid} loading {self.model_path.name}",
            file=sys.stderr,
            flush=True,
        )
        self.base_url = _wait_until_ready(
            self.process, self.log_path, self.model_path, self.start_timeout
        )

    def revive(self, base_url: str) -> str:
        """The server's URL, after restarting it if it has exited (once per run: a server
        that dies twice is a BackendError naming its exit code and log)."""
        assert self.process is not None
        code = self.process.poll()
        if code is None and not self._accepts_connections():
            # A killed server's socket refuses connections a moment before its process can
            # be reaped: taken for alive, the request's one revive was spent and the run
            # ended "cannot connect ... gave up after 6 attempts". Wait for the exit.
            try:
                code = self.process.wait(timeout=EXIT_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                code = None
        if code is None:
            return self.base_url  # alive: the refusal was something else (or it restarted)
        self.keep_log = True
        what = (
            f"embedded llama.cpp server pid {self.process.pid} ({self.model_path.name}) "
            f"exited with code {code}{_signal_name(code)}"
        )
        if self.restarts >= 1:
            raise BackendError(
                f"{what} again after a restart; its log: {self.log_path}: "
                f"{_log_tail(self.log_path) or 'no output'}"
            )
        print(
            f"icm: warning: {what} (log: {self.log_path}); restarting it once",
            file=sys.stderr,
            flush=True,
        )
        self.restarts += 1
        self.start()
        return self.base_url

    def _accepts_connections(self) -> bool:
        """Whether the running server's port takes a connection now."""
        parts = urlsplit(self.base_url)
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=5.0):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def _signal_name(code: int) -> str:
    if code >= 0:
        return ""
    try:
        return f" ({signal.Signals(-code).name})"
    except ValueError:
        return ""


def _log_tail(path: Path, n_lines: int = 6) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n_lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after a grace period; always reaped."""
    if process.poll() is not None:
        return
    try:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    except BaseException:  # a second Ctrl-C while waiting: no more grace
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@contextlib.contextmanager
def embedded_server(
    model_path: Path,
    *,
    n_ctx: int | None = None,
    threads: int | None = None,
    slots: int | None = None,
    start_timeout: float | None = None,
) -> Iterator[EmbeddedServer]:
    """Start `python -m icm.backends.llama_server` on a free port, yield once it answers
    /health, stop it on the way out (whatever the way out is).

    n_ctx: tokens per prompt at most (default $ICM_N_CTX or 8192); slots: prompt prefixes
    kept in the KV cache (default $ICM_SLOTS or 2)."""
    try:
        n_ctx = n_ctx or int(os.environ.get("ICM_N_CTX", DEFAULT_N_CTX))
        slots = slots or int(os.environ.get("ICM_SLOTS", DEFAULT_SLOTS))
    except ValueError as e:
        raise ConfigError(f"ICM_N_CTX / ICM_SLOTS: not a number ({e})") from None
    if n_ctx < 16 or slots < 1:
        raise ConfigError(f"ICM_N_CTX must be >= 16 and ICM_SLOTS >= 1, got {n_ctx}, {slots}")
    threads = threads or default_threads()
    timeout = start_timeout or float(
        os.environ.get("ICM_SERVER_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    )
    log_dir = Path(tempfile.mkdtemp(prefix="icm-llama-server-"))
    command = [
        sys.executable,
        "-m",
        "icm.backends.llama_server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        "0",  # the server binds a free port and says which in its readiness line
        "--n-ctx",
        str(n_ctx),
        "--threads",
        str(threads),
        "--slots",
        str(slots),
        "--parent-pid",
        str(os.getpid()),
    ]
    sha256 = verified_sha256(model_path)
    if sha256 is not None:  # just hashed by this process: the server need not hash again
        command += ["--sha256", sha256]
    server = EmbeddedServer(command, model_path, log_dir, timeout)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if not server.keep_log:
            with contextlib.suppress(OSError):
                for log in log_dir.iterdir():
                    log.unlink()
                log_dir.rmdir()


def _wait_until_ready(
    process: subprocess.Popen[bytes], log_path: Path, model_path: Path, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    base_url = None
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise BackendError(
                f"embedded llama.cpp server ({model_path}) exited with code {code} while "
                f"starting: {_log_tail(log_path) or 'no output'}"
            )
        if base_url is None:
            try:
                match = _READY_LINE.search(log_path.read_text(errors="replace"))
            except OSError:
                match = None
            base_url = match.group(1) if match else None
        if base_url is not None:
            root = base_url.removesuffix("/v1")
            try:
                if httpx.get(root + "/health", timeout=2.0, trust_env=False).status_code == 200:
                    return base_url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise BackendError(
        f"embedded llama.cpp server ({model_path}) did not become ready within {timeout:g} s "
        f"(ICM_SERVER_START_TIMEOUT): {_log_tail(log_path) or 'no output'}"
    )
