"""Language-model backends, opened through registry.py (`open_model`, or `open_backend`
for a single scorer); the flags pick one:

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
from collections.abc import Iterator
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
    """A scorer for `label_words` on the model the flags select, opened through the
    registry (registry.py) and closed with the context."""
    from icm.backends.registry import open_model

    with open_model(cfg) as model, model.scorer(label_words) as scorer:
        yield scorer
