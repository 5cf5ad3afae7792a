"""The one way icm opens a model: a registry of names, each with a factory that opens it.

    embedded      icm's llama.cpp server, a child process, on the packaged base model or
                  --model-path FILE.gguf (embedded.py)
    completions   OpenAI-compatible servers at --base-url (completions.py)
    transformers  scored in process (transformers_scorer.py; the `finetune` extra): a
                  Hugging Face model folder, an `icm finetune` output, a GGUF file
                  (dequantized) or, without --model-path, the packaged base model
    synthetic     `icm run`'s stand-in for a model, a noisy function of the gold labels;
                  it has no label scorer, so eval and replicate refuse it

The flags choose the name (model_name): a --model-path folder is opened by transformers,
a GGUF file by the embedded server; only a caller that names "transformers" loads a GGUF
file or the packaged model in process (open_in_process).

Opening is what costs (a server started, weights loaded) and happens once; a scorer for a
testbed's label words is then cheap (`OpenModel.scorer`), so `icm replicate` scores every
testbed, seed and baseline on one server. The model is released when its context ends.
`icm run`, `icm eval`, `icm replicate` and icm.api all open their model here, and so do
`icm run --iterative` (one model per batch: the base, then each fine-tuned one) and
`icm eval --finetuned` (the base, then each fine-tuned model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from icm.backends.base import LabelScorer
from icm.errors import ConfigError

if TYPE_CHECKING:
    from icm.backends.transformers_scorer import LoadedModel
    from icm.config import RunConfig


class OpenModel(ABC):
    """A model ready to score: `scorer(label_words)` makes a scorer on it (to be closed by
    the caller, e.g. with `with`); the model itself stays open until its factory's context
    ends."""

    name: str

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        """A scorer of prompts for these label words, on this model."""


class ServedModel(OpenModel):
    """A model behind OpenAI-compatible completions endpoints (ours or someone's)."""

    def __init__(
        self,
        cfg: RunConfig,
        name: str,
        base_urls: list[str],
        model: str,
        revive: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(cfg)
        self.name = name
        self.base_urls = base_urls
        self.model = model
        self.revive = revive

    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        from icm.backends.completions import CompletionsScorer

        return CompletionsScorer(
            self.base_urls,
            self.model,
            label_words=label_words,
            logprobs=self.cfg.logprobs,
            concurrency=self.cfg.concurrency,
            timeout=self.cfg.timeout,
            keep_trailing_space=self.cfg.keep_trailing_space,
            revive=self.revive,
        )


class InProcessModel(OpenModel):
    """A transformers model loaded into this process."""

    name = "transformers"

    def __init__(self, cfg: RunConfig, loaded: LoadedModel) -> None:
        super().__init__(cfg)
        self.loaded = loaded

    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        from icm.backends.transformers_scorer import TransformersScorer

        return TransformersScorer(
            self.loaded,
            label_words=label_words,
            logprobs=self.cfg.logprobs,
            keep_trailing_space=self.cfg.keep_trailing_space,
        )


class SyntheticModel(OpenModel):
    """The stand-in of `icm run` (icm.run.synthetic_scorer_factory scores with it)."""

    name = "synthetic"

    def scorer(self, label_words: tuple[str, str]) -> LabelScorer:
        raise ConfigError(
            "--model synthetic: a stand-in for the search only, not a language model; "
            "this needs a model (the embedded default, --model-path or --base-url)"
        )


def _model_path(cfg: RunConfig) -> Path | None:
    return Path(cfg.model_path).expanduser() if cfg.model_path else None


@contextlib.contextmanager
def open_embedded(cfg: RunConfig) -> Iterator[OpenModel]:
    from icm.backends.default_model import packaged_model_path
    from icm.backends.embedded import embedded_server

    if cfg.base_url:
        raise ConfigError("model 'embedded': starts its own server; drop --base-url")
    model_path = _model_path(cfg) or packaged_model_path()
    with embedded_server(model_path) as server:
        # A server that dies (OOM killer, a crash) is restarted once (server.revive).
        yield ServedModel(cfg, "embedded", [server.base_url], "embedded", server.revive)


@contextlib.contextmanager
def open_completions(cfg: RunConfig) -> Iterator[OpenModel]:
    if not cfg.base_url:
        raise ConfigError("model 'completions': needs --base-url (an OpenAI-compatible server)")
    yield ServedModel(cfg, "completions", list(cfg.base_url), cfg.model)


@contextlib.contextmanager
def open_transformers(cfg: RunConfig) -> Iterator[OpenModel]:
    from icm.backends.transformers_scorer import load_causal_lm

    if cfg.base_url:
        raise ConfigError("model 'transformers': loads the model in process; drop --base-url")
    # A folder (an `icm finetune` output's LoRA is merged), a GGUF file (converted once to
    # a folder in the model cache) or the packaged base model: llama.cpp serves only the
    # GGUF files, so this is how fine-tuned models and their bases are scored alike.
    model_path = _model_path(cfg)
    loaded = load_causal_lm(model_path if model_path is not None else "embedded")
    try:
        yield InProcessModel(cfg, loaded)
    finally:
        # Scorers made on the model keep `loaded` (and their stats): drop the weights
        # themselves, so that the next model loads into the memory they held.
        loaded.model = None
        gc.collect()


@contextlib.contextmanager
def open_synthetic(cfg: RunConfig) -> Iterator[OpenModel]:
    yield SyntheticModel(cfg)


MODELS: dict[str, Callable[[RunConfig], contextlib.AbstractContextManager[OpenModel]]] = {
    "embedded": open_embedded,
    "completions": open_completions,
    "transformers": open_transformers,
    "synthetic": open_synthetic,
}


def model_name(cfg: RunConfig) -> str:
    """The registry name of the model the flags select: --model synthetic, --base-url, a
    --model-path folder, else the embedded server."""
    from icm.config import SYNTHETIC_MODEL

    if cfg.model == SYNTHETIC_MODEL:
        return "synthetic"
    if cfg.base_url:
        return "completions"
    model_path = _model_path(cfg)
    if model_path is not None and model_path.is_dir():
        return "transformers"
    return "embedded"


def open_model(
    cfg: RunConfig, name: str | None = None
) -> contextlib.AbstractContextManager[OpenModel]:
    """Check the model flags, then open the model `name` (default: the one the flags
    select) for as long as the returned context lasts."""
    from icm.backends import check_model_options

    name = model_name(cfg) if name is None else name
    factory = MODELS.get(name)
    if factory is None:
        raise ConfigError(f"model '{name}': unknown; the models are {', '.join(MODELS)}")
    check_model_options(cfg)
    return factory(cfg)


def open_in_process(
    cfg: RunConfig, source: str | Path
) -> contextlib.AbstractContextManager[OpenModel]:
    """The model `source`, named as an `icm finetune` record names its base (a GGUF file,
    a Hugging Face folder, or "embedded": the packaged base model) or an `icm finetune`
    output folder, opened in process by transformers with cfg's scoring options. The
    source alone names the model: cfg's --model, --base-url and --model-path do not apply."""
    from icm.config import DEFAULT_MODEL

    model_path = None if str(source) == "embedded" else str(source)
    in_process = dataclasses.replace(cfg, model=DEFAULT_MODEL, base_url=[], model_path=model_path)
    return open_model(in_process, "transformers")
