"""`icm data`: get the external dataset files the testbeds read.

    icm data list  [--data-dir DIR] [--check]     what is where, per dataset
    icm data fetch NAME... [--cache DIR] [--mirror URL] [--force]

`fetch` downloads each file of a dataset from its canonical public source (raw GitHub at
the commit named in icm/data/manifest.py) into a cache folder laid out like a data
directory, and checks its SHA-256; a mismatch stops with an error naming the file and
nothing unverified is left behind. The testbeds read that cache when neither --data-dir
nor $ICM_DATA_DIR is given. --mirror (or $ICM_DATA_MIRROR) replaces GitHub with any
server that serves the data directory layout, e.g. `python -m http.server` in a copy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from icm.cli.options import add_option
from icm.data.data_dir import DATA_DIR_ENV, default_cache_dir, not_a_folder, resolve_data_dir
from icm.data.fetch import MIRROR_ENV, fetch_file, sha256_of, source_url
from icm.data.manifest import DATASETS
from icm.errors import ConfigError, did_you_mean


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data",
        help="list or fetch the external dataset files",
        description="List or download the dataset files the testbeds read.",
    )
    sub = p.add_subparsers(dest="data_command", parser_class=type(p))
    fetch = sub.add_parser(
        "fetch",
        help="download datasets from their canonical source and check their SHA-256",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(DATASETS)} or all")
    fetch.add_argument(
        "--cache", type=Path, default=None, help=f"download folder (default {default_cache_dir()})"
    )
    fetch.add_argument(
        "--mirror",
        default=None,
        help=f"base URL serving the data directory layout (default ${MIRROR_ENV}, else GitHub)",
    )
    fetch.add_argument("--force", action="store_true", help="download even if already verified")
    add_option(fetch, "timeout", default=60.0)
    fetch.set_defaults(handler=cmd_fetch)
    lst = sub.add_parser(
        "list",
        help="the datasets and which of their files are present",
        description="List the datasets the testbeds read and which of their files the data "
        "directory holds (--check: and whether each still has its recorded SHA-256).",
    )
    add_option(lst, "data_dir")
    lst.add_argument("--check", action="store_true", help="also verify every SHA-256")
    lst.set_defaults(handler=cmd_list)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def dataset_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n == "all":
            out += [d for d in DATASETS if d not in out]
        elif n in DATASETS:
            out += [] if n in out else [n]
        else:
            raise ConfigError(
                f"data fetch: unknown dataset '{n}'.{did_you_mean(n, list(DATASETS))} "
                f"Known: {', '.join(DATASETS)}, all"
            )
    return out


def cmd_fetch(args: argparse.Namespace) -> int:
    cache: Path = args.cache or default_cache_dir()
    mirror = args.mirror or os.environ.get(MIRROR_ENV) or None
    for name in dataset_names(args.names):
        ds = DATASETS[name]
        print(f"{name}: {len(ds.files)} file(s) -> {cache}  [license: {ds.license}]")
        for f in ds.files:
            status = fetch_file(f, cache, mirror=mirror, timeout=args.timeout, force=args.force)
            print(f"  {status:<10} {f.path}  sha256 {f.sha256[:12]}…  {source_url(f, mirror)}")
        if name == "machiavelli" and mirror is None:
            fetch_machiavelli_scenes(cache, args.timeout)
        elif name == "machiavelli":
            print("  skipped    scene data: it comes from HuggingFace only, not from a mirror")
    hint = "" if args.cache is None else f" (pass --data-dir {cache} or set {DATA_DIR_ENV})"
    print(f"done: {cache} is a data directory{hint or ' (the testbeds read it by default)'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    if root is not None and not root.is_dir():  # listing it would call every file missing
        where = "--data-dir" if args.data_dir else f"${DATA_DIR_ENV}"
        raise ConfigError(f"{where}: '{root}': data directory {not_a_folder(root)}")
    print(f"data directory: {root or '(none: pass --data-dir, set ' + DATA_DIR_ENV + ')'}")
    bad = 0
    for ds in DATASETS.values():
        present = [f for f in ds.files if root is not None and (root / f.path).is_file()]
        print(f"{ds.name:<28} {len(present)}/{len(ds.files)} files  {ds.description}")
        for f in ds.files:
            path = None if root is None else root / f.path
            if path is None or not path.is_file():
                state = "missing"
            elif args.check:
                state = "ok" if sha256_of(path) == f.sha256 else "CHANGED"
                bad += state == "CHANGED"
            else:
                state = "present"
            print(f"    {state:<8} {f.path}")
    if bad:
        print(f"{bad} file(s) differ from their recorded SHA-256", file=sys.stderr)
        return 1
    return 0


def fetch_machiavelli_scenes(cache: Path, timeout: float) -> None:
    """The scene-level MACHIAVELLI data has no pinned file to check: it comes from the
    derived HuggingFace dataset wassname/machiavelli, page by page (no SHA-256; the source
    and date are recorded in FETCH.json beside it)."""
    import httpx

    from icm.errors import BackendError
    from icm.testbeds.machiavelli import fetch_machiavelli

    def progress(done: int, total: int | None) -> None:
        print(f"\r  rows {done}/{total or '?'}", end="", flush=True)

    try:
        path = fetch_machiavelli(cache, timeout=timeout, progress=progress)
    except httpx.HTTPError as e:
        raise BackendError(f"machiavelli: the HuggingFace rows API did not answer ({e})") from None
    print(f"\n  done       {path.relative_to(cache)}  (no fixed checksum: see FETCH.json)")
