"""`icm cache stats|clear`: look at or empty the response cache."""

from __future__ import annotations

import argparse
import json

from icm.backends.response_cache import open_response_cache
from icm.cli.options import add_option
from icm.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "cache",
        help="the model-response cache (stats, clear)",
        description="Show how many model responses the response cache holds (by model) and "
        "its size, or empty it.",
    )
    p.add_argument(
        "action",
        choices=["stats", "clear"],
        help="stats: responses held, by model, and size; clear: empty it",
    )
    add_option(
        p,
        "cache",
        help="response cache: a SQLite path or 'default' ($ICM_CACHE_DIR or "
        "~/.cache/icm/responses.sqlite)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # `--cache off` means no cache to `icm run`; here it once made a file named "off".
    if args.cache == "off":
        raise ConfigError(
            f"--cache off: `icm cache {args.action}` needs a cache file; leave out --cache for "
            "the default one, or give a path"
        )
    cache = open_response_cache(args.cache)
    try:
        if args.action == "stats":
            print(json.dumps(cache.stats(), indent=2))
        else:
            print(f"removed {cache.clear()} responses from {cache.path}")
    finally:
        cache.close()
    return 0
