"""`icm serve`: icm's llama.cpp scoring server in the foreground.

    icm serve [--model-path FILE.gguf] [--host 127.0.0.1] [--port 8080] [--n-ctx N]

Then, elsewhere: icm run --base-url http://127.0.0.1:8080 --model <the printed name>
(or --model embedded, which asks the server for its model name).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from icm.backends.llama_server import (
    DEFAULT_MAX_LOGPROBS,
    DEFAULT_N_CTX,
    DEFAULT_SLOTS,
    EngineError,
    ScoringServer,
    serve,
)
from icm.cli.options import add_option
from icm.errors import BackendError, ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run icm's llama.cpp scoring server (OpenAI-compatible /v1/completions)",
        description="Serve next-token logprobs of a GGUF base model with prefix caching, "
        "for `icm run --base-url`. Ctrl-C stops it.",
    )
    add_option(p, "model_path", help="a GGUF file (default: the packaged gemma-3-270m base model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = a free port)")
    p.add_argument(
        "--n-ctx",
        type=int,
        default=DEFAULT_N_CTX,
        help=f"longest prompt in tokens (default {DEFAULT_N_CTX})",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument(
        "--slots",
        type=int,
        default=DEFAULT_SLOTS,
        help=f"prompt prefixes kept in the KV cache, each n-ctx tokens (default {DEFAULT_SLOTS})",
    )
    p.add_argument(
        "--max-logprobs",
        type=int,
        default=DEFAULT_MAX_LOGPROBS,
        help=f"largest top-k a request may ask for (default {DEFAULT_MAX_LOGPROBS})",
    )
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from icm.backends.default_model import describe_model, packaged_model_path

    for flag, value in (("--port", args.port), ("--n-ctx", args.n_ctx), ("--slots", args.slots)):
        if value < (0 if flag == "--port" else 1):
            raise ConfigError(f"{flag}: must be >= {0 if flag == '--port' else 1}, got {value}")
    if args.model_path:
        model_path = Path(args.model_path).expanduser()
        if not model_path.is_file():
            raise ConfigError(f"--model-path: no such file '{model_path}'")
    else:
        model_path = packaged_model_path()

    def on_ready(server: ScoringServer) -> None:
        info = describe_model(server.engine.metadata, file_name=model_path.name)
        if info.warning():
            print(f"icm: warning: {info.warning()}", file=sys.stderr)
        print(
            f"icm serve: {server.base_url} serves '{server.model_id}' ({model_path}); "
            f"use: icm run --base-url {server.base_url} --model {server.model_id}. "
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )

    try:
        serve(
            model_path,
            host=args.host,
            port=args.port,
            n_ctx=args.n_ctx,
            n_threads=args.threads,
            n_slots=args.slots,
            max_logprobs=args.max_logprobs,
            verbose=args.verbose,
            on_ready=on_ready,
        )
    except EngineError as e:
        raise BackendError(str(e)) from None
    except KeyboardInterrupt:
        pass
    print("icm serve: stopped", file=sys.stderr)
    return 0
