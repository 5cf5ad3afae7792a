"""Language-model backends. `open_backend` picks one from the run configuration.

--base-url URL [--base-url URL2 ...]  OpenAI-compatible servers (completions.py)
(no --base-url)                       icm's llama.cpp server as a child process
                                      (embedded.py, llama_server.py) on the packaged
                                      base model or --model-path FILE.gguf
--model-path FOLDER                   a Hugging Face model folder or an `icm finetune`
                                      output, scored in process by transformers
                                      (transformers_scorer.py; the `finetune` extra)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from icm.backends.base import LabelScorer

if TYPE_CHECKING:
    from icm.config import RunConfig


GGUF_MAGIC = b"GGUF"  # the first 4 bytes of every GGUF file


def check_model_options(cfg: RunConfig) -> None:
    """The errors of the model flags that need no model loaded (no name without a server, a
    --model-path that is no model, a missing finetune extra), for `icm run` to say before
    its run directory exists: a resume would fail the same way. open_backend says them too,
    for other callers."""
    from icm.config import SYNTHETIC_MODEL
    from icm.errors import ConfigError

    if cfg.model == SYNTHETIC_MODEL:
        return
    if cfg.iterative:
        from icm.backends.transformers_scorer import require_finetune_extra

        require_finetune_extra()
    if cfg.base_url:
        if cfg.model_path:
            raise ConfigError(
                "--model-path: only for the embedded server; drop it, or drop --base-url"
            )
        return
    model_path = Path(cfg.model_path).expanduser() if cfg.model_path else None
    if model_path is not None and model_path.is_dir():
        from icm.backends.transformers_scorer import FINETUNE_RECORD, require_finetune_extra

        if not any((model_path / name).exists() for name in ("config.json", FINETUNE_RECORD)):
            raise ConfigError(
                f"--model-path: '{model_path}' is a folder, but neither a Hugging Face model "
                f"folder (config.json) nor an `icm finetune` output ({FINETUNE_RECORD})"
            )
        require_finetune_extra()  # transformers scores a folder in process
    elif model_path is not None:
        if not model_path.is_file():
            raise ConfigError(f"--model-path: no such file or folder '{model_path}'")
        with model_path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
        if magic != GGUF_MAGIC:
            raise ConfigError(
                f"--model-path: '{model_path}' is not a GGUF model file (it does not start "
                "with 'GGUF'); give a .gguf file, a Hugging Face model folder or an "
                "`icm finetune` output"
            )
    elif cfg.model != "embedded":
        raise ConfigError(
            f"--model {cfg.model}: a model name needs --base-url (an OpenAI-compatible "
            "server); for a local GGUF file use --model-path FILE.gguf"
        )


@contextlib.contextmanager
def open_backend(cfg: RunConfig, label_words: tuple[str, str]) -> Iterator[LabelScorer]:
    from icm.backends.completions import CompletionsScorer

    check_model_options(cfg)

    def scorer_on(
        base_urls: list[str], model: str, revive: Callable[[str], str] | None = None
    ) -> CompletionsScorer:
        return CompletionsScorer(
            base_urls,
            model,
            label_words=label_words,
            logprobs=cfg.logprobs,
            concurrency=cfg.concurrency,
            timeout=cfg.timeout,
            keep_trailing_space=cfg.keep_trailing_space,
            revive=revive,
        )

    if cfg.base_url:
        with scorer_on(cfg.base_url, cfg.model) as scorer:
            yield scorer
        return

    from icm.backends.default_model import packaged_model_path
    from icm.backends.embedded import embedded_server

    model_path = Path(cfg.model_path).expanduser() if cfg.model_path else None
    if model_path is not None and model_path.is_dir():
        # A Hugging Face model folder or an `icm finetune` output (its LoRA merged into
        # its base): llama.cpp cannot serve these, transformers scores them in process.
        from icm.backends.transformers_scorer import TransformersScorer, load_causal_lm

        with TransformersScorer(
            load_causal_lm(model_path),
            label_words=label_words,
            logprobs=cfg.logprobs,
            keep_trailing_space=cfg.keep_trailing_space,
        ) as scorer:
            yield scorer
        return
    if model_path is None:  # --model embedded (check_model_options refused other names)
        model_path = packaged_model_path()
    with (
        embedded_server(model_path) as server,
        # A server that dies (OOM killer, a crash) is restarted once (server.revive).
        scorer_on([server.base_url], "embedded", server.revive) as scorer,
    ):
        yield scorer
