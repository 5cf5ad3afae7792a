"""Errors that the CLI reports as one clear line (no traceback).

Every message names what is wrong and where: the file, line and field for data, the flag
and value for configuration, the endpoint for a model server.
"""

from __future__ import annotations

from pathlib import Path


class IcmError(Exception):
    """Base of every error the `icm` command reports without a traceback."""


class ConfigError(IcmError, ValueError):
    """A bad option value or an inconsistent configuration."""


class DataError(IcmError, ValueError):
    """Malformed input data. Carries the file, the 1-based line (or row) and the field."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        what = f"field '{field}': " if field is not None else ""
        # One line whatever the data holds: a value or a column name quoted from a file
        # may contain line breaks.
        message = f"{where}{what}{problem}"
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


class BackendError(IcmError, RuntimeError):
    """A model server that cannot be reached or answers unusably (names the endpoint)."""


def did_you_mean(name: str, known: list[str]) -> str:
    """' Did you mean 'x'?' for the closest known names, or ''."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
