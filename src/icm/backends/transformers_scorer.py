"""A LabelScorer that runs a transformers causal LM in this process.

This is how fine-tuned models are served back to the search (`icm run --iterative`) and
evaluated (`icm eval --finetuned`): a LoRA adapter from `icm finetune` is applied to its
base model and merged, so each fine-tuned model is scored exactly as trained, with no
conversion step. (The alternative, converting every fine-tuned model to GGUF for the
llama.cpp server, needs llama.cpp's conversion script, which no PyPI package ships, and
re-quantizing would blur the difference that fine-tuning made.)

Models load from a Hugging Face folder, from a GGUF file (transformers dequantizes it; the
converted folder is kept in icm's model cache, since converting Gemma's 262k-token
vocabulary takes about a minute), or from an `icm finetune` output folder.

Scoring follows the completions backend: the prompt's trailing spaces are dropped unless
asked not to, the next-token distribution after the prompt is cut to the top k, and the
original rule (base.label_logprobs) sums the mass of tokens containing each label word.
Prompts are scored one at a time: batching would need padding, which shifts positions
and so the scores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icm.backends.base import LabelScorer, label_logprobs
from icm.errors import BackendError, ConfigError
from icm.file_lock import exclusive_lock

FINETUNE_RECORD = "finetune.json"  # written by icm finetune beside the adapter
INSTALL_HINT = (
    "fine-tuning and in-process scoring need the 'finetune' extra: "
    "`uv sync --extra finetune` (or `pip install 'icm[finetune]'`)"
)


def require_finetune_extra() -> None:
    """A clear error instead of an ImportError deep inside a run."""
    missing = []
    for module in ("torch", "transformers", "peft", "trl"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")


def quiet_transformers() -> None:
    # The library's progress bars and advisory warnings would bury icm's own log.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Models are local files here; never reach for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def hf_cache_dir() -> Path:
    from icm.backends.default_model import cache_dir

    return cache_dir() / "hf"


def converted_gguf_folder(gguf: Path) -> Path:
    """The Hugging Face folder of a GGUF file, converted once and kept in the model cache.

    The folder name carries the file's fingerprint, so a different file never reuses it;
    it is written under a temporary name and renamed, so a killed conversion leaves
    nothing that looks finished."""
    from icm.backends.llama_server import quick_fingerprint, served_model_id

    fingerprint = quick_fingerprint(gguf).split(":")[-1]
    target = hf_cache_dir() / f"{served_model_id(gguf)}-{fingerprint}"
    if (target / "config.json").exists():
        return target
    with exclusive_lock(hf_cache_dir() / f".{target.name}.lock"):
        if (target / "config.json").exists():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
        except Exception as e:  # transformers raises many types for unsupported files
            raise ConfigError(
                f"{gguf}: transformers cannot load this GGUF file ({type(e).__name__}: {e}); "
                "give a Hugging Face model folder instead"
            ) from None
        # The weights are dequantized to float32 on load, but transformers keeps a "gguf"
        # quantizer on the model that refuses to save; the saved folder is plain float32.
        model.hf_quantizer = None  # type: ignore[assignment]
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "icm-source.json").write_text(
            json.dumps({"gguf": str(gguf), "fingerprint": fingerprint}, indent=2)
        )
        tmp.rename(target)
    return target


def resolve_model_folder(source: str | Path) -> Path:
    """A GGUF file, a Hugging Face model folder, or 'embedded' (the packaged base model),
    as a folder that transformers loads."""
    if str(source) == "embedded":
        from icm.backends.default_model import packaged_model_path

        return converted_gguf_folder(packaged_model_path())
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return converted_gguf_folder(path)
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise ConfigError(
        f"'{source}': not a GGUF file nor a Hugging Face model folder (no config.json)"
    )


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the weight files' names and bytes: two folders with the same weights
    have the same fingerprint (the response cache and the run records use it)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    for p in files:
        digest.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel, eval mode
    tokenizer: Any
    model_id: str  # names the weights: base folder and adapter fingerprint
    base: str  # what the base was loaded from
    adapter: Path | None = None


def read_finetune_record(adapter: Path) -> dict[str, Any]:
    path = adapter / FINETUNE_RECORD
    try:
        record = json.loads(path.read_text())
    except OSError:
        raise ConfigError(
            f"{adapter}: no {FINETUNE_RECORD} (not an `icm finetune` output folder)"
        ) from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("base"), str):
        raise ConfigError(f"{path}: field 'base' is missing")
    return record


def is_finetuned_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / FINETUNE_RECORD).exists()


def load_causal_lm(source: str | Path) -> LoadedModel:
    """A base model (GGUF file, HF folder, 'embedded') or an `icm finetune` output folder,
    whose LoRA adapter is merged into its base."""
    require_finetune_extra()
    quiet_transformers()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter: Path | None = None
    base = str(source)
    if is_finetuned_folder(source):
        adapter = Path(source)
        base = read_finetune_record(adapter)["base"]
    folder = resolve_model_folder(base)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # float32 on the CPU (scores as close as possible to the weights); bfloat16 on a GPU,
    # where the paper's 8B-70B models would not fit otherwise.
    on_gpu = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.bfloat16 if on_gpu else torch.float32
    )
    model_id = f"transformers:{folder.name}"
    if folder.parent != hf_cache_dir():
        # A researcher's own folder: its name says nothing of its weights, and the model
        # id keys the response cache.
        model_id += f"-{folder_fingerprint(folder)}"
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        model_id += f"+lora-{folder_fingerprint(adapter)}"
    if on_gpu:
        model.to("cuda")  # type: ignore[arg-type]
    model.eval()
    return LoadedModel(model, tokenizer, model_id, base, adapter)


class TransformersScorer(LabelScorer):
    """Scores prompts with an in-process transformers model (see the module docstring)."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        label_words: tuple[str, str] = ("True", "False"),
        logprobs: int = 20,
        keep_trailing_space: bool = False,
    ) -> None:
        super().__init__()
        if logprobs < 1:
            raise ConfigError(f"--logprobs: must be >= 1, got {logprobs}")
        self.loaded = loaded
        self.label_words = label_words
        self.logprobs = logprobs
        self.keep_trailing_space = keep_trailing_space
        space = "kept" if keep_trailing_space else "stripped"
        self.model_id = f"{loaded.model_id} (top-{logprobs} logprobs, trailing space {space})"

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "logprobs": self.logprobs}

    def prepare(self, prompt: str) -> str:
        return prompt if self.keep_trailing_space else prompt.rstrip(" ")

    def top_logprobs(self, prompt: str) -> dict[str, float]:
        """{token text: logprob} of the k most likely next tokens; tokens that decode to
        the same text are merged (their probabilities added)."""
        import torch

        tok = self.loaded.tokenizer
        ids = tok(self.prepare(prompt), return_tensors="pt").input_ids.to(self.loaded.model.device)
        if ids.shape[1] == 0:
            raise BackendError("empty prompt: nothing to score")
        with torch.inference_mode():
            # Only the last position's logits: the LM head over Gemma's 262k-token
            # vocabulary costs more than the rest of a small model.
            logits = self.loaded.model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
        top = torch.log_softmax(logits, dim=-1).topk(self.logprobs)
        self.stats.prompt_tokens += int(ids.shape[1])
        out: dict[str, float] = {}
        for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            text = tok.decode([index])
            out[text] = math.log(math.exp(out[text]) + math.exp(value)) if text in out else value
        return out

    def score_prompts(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        started = time.monotonic()
        try:
            results = []
            for prompt in prompts:
                results.append(label_logprobs(self.top_logprobs(prompt), self.label_words))
                self.stats.requests += 1
                self.stats.prompt_chars += len(prompt)
            return results
        finally:
            self.stats.seconds += time.monotonic() - started
