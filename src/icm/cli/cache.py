"""`icm cache stats|clear`: look at or empty the response cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from icm.backends.response_cache import ResponseCache, default_cache_path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cache", help="the model-response cache (stats, clear)")
    p.add_argument(
        "action",
        choices=["stats", "clear"],
        help="stats: responses held, by model, and size; clear: empty it",
    )
    p.add_argument("--cache", type=Path, default=None, help="cache file (default: the user cache)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cache = ResponseCache(args.cache or default_cache_path())
    try:
        if args.action == "stats":
            print(json.dumps(cache.stats(), indent=2))
        else:
            print(f"removed {cache.clear()} responses from {cache.path}")
    finally:
        cache.close()
    return 0
