"""Downloading a manifest file (icm.data.manifest) into a data directory: from its pinned
source or a mirror, checked against its SHA-256; nothing unverified is kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from icm.data.manifest import RemoteFile
from icm.errors import DataError

MIRROR_ENV = "ICM_DATA_MIRROR"  # base URL serving the data dir layout, instead of GitHub
CHUNK = 1 << 16


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def source_url(f: RemoteFile, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{f.path}" if mirror else f.url


def fetch_file(f: RemoteFile, cache: Path, *, mirror: str | None, timeout: float, force: bool):
    """Download one file into cache/f.path unless a verified copy is there. Returns
    'cached' or 'downloaded'; raises DataError on a failed download or a bad checksum."""
    import httpx

    target = cache / f.path
    if not force and target.is_file() and sha256_of(target) == f.sha256:
        return "cached"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = source_url(f, mirror)
    h = hashlib.sha256()
    try:
        with (
            httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as r,
            part.open("wb") as out,
        ):
            if r.status_code != 200:
                raise DataError(f"download failed: HTTP {r.status_code} from {url}", path=target)
            for chunk in r.iter_bytes(CHUNK):
                h.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as e:
        part.unlink(missing_ok=True)
        raise DataError(f"download failed from {url}: {e}", path=target) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = h.hexdigest()
    if got != f.sha256:
        part.unlink(missing_ok=True)
        raise DataError(
            f"SHA-256 mismatch: expected {f.sha256}, got {got} (from {url}); nothing was kept",
            path=target,
        )
    os.replace(part, target)
    return "downloaded"
