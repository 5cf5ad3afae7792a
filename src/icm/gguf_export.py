"""`icm merge-gguf`: an `icm finetune` adapter merged into its GGUF base, as a GGUF file.

The in-process transformers scorer serves a fine-tuned model one prompt at a time in
float32, which on a CPU is several times slower than llama.cpp with its prefix cache. This
writes the fine-tuned model as a GGUF file that the embedded llama.cpp server (or any
llama.cpp / GGUF-reading engine) serves: `icm run --model-path ADAPTER/merged.gguf`.

How: every tensor of the base GGUF file is copied as it is (its metadata too), except the
weights that LoRA touched, which are written in float32 as dequantize(base) + delta, where
delta is PEFT's own `get_delta_weight` of that layer (so its scaling rules are PEFT's, not
re-derived here). The merged weights are not quantized again: a re-quantization would blur
the small deltas that fine-tuning made. Tensor names go from Hugging Face to GGUF through
the gguf package's name map of the architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icm.errors import ConfigError

MERGED_NAME = "merged.gguf"


def base_gguf_of(record: dict[str, Any]) -> Path:
    base = record["base"]
    if base == "embedded":
        from icm.backends.default_model import packaged_model_path

        return packaged_model_path()
    path = Path(base).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    raise ConfigError(
        f"merge-gguf: the adapter's base '{base}' is not a GGUF file; a Hugging Face base "
        "is served as a folder instead (icm run --model-path ADAPTER_FOLDER)"
    )


def lora_deltas(adapter: Path) -> dict[str, Any]:
    """{Hugging Face weight name: float32 delta (out, in) as numpy} of every LoRA layer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from icm.backends.transformers_scorer import (
        quiet_transformers,
        read_finetune_record,
        resolve_model_folder,
    )

    quiet_transformers()
    folder = resolve_model_folder(read_finetune_record(adapter)["base"])
    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter))
    deltas: dict[str, Any] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if not hasattr(module, "get_delta_weight") or not getattr(module, "lora_A", None):
                continue
            for adapter_name in module.lora_A:
                hf_name = name.removeprefix("base_model.model.") + ".weight"
                delta = module.get_delta_weight(adapter_name).float().cpu().numpy()
                deltas[hf_name] = deltas[hf_name] + delta if hf_name in deltas else delta
    if not deltas:
        raise ConfigError(f"{adapter}: the adapter has no LoRA layers")
    return deltas


def merge_gguf(adapter: Path, out: Path | None = None) -> Path:
    """Write the adapter merged into its base GGUF (default: ADAPTER/merged.gguf)."""
    from icm.backends.transformers_scorer import read_finetune_record, require_finetune_extra

    require_finetune_extra()
    import gguf
    import numpy as np
    from gguf import quants

    record = read_finetune_record(adapter)
    source = base_gguf_of(record)
    out = out or adapter / MERGED_NAME
    reader = gguf.GGUFReader(source)
    arch = str(reader.fields["general.architecture"].contents())
    arch_ids = {name: arch_id for arch_id, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in arch_ids:
        raise ConfigError(f"{source}: architecture '{arch}' unknown to the gguf package")
    n_blocks = int(reader.fields[f"{arch}.block_count"].contents())
    names = gguf.get_tensor_name_map(arch_ids[arch], n_blocks)
    by_gguf_name: dict[str, Any] = {}
    for hf_name, delta in lora_deltas(adapter).items():
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight",))
        if gguf_name is None:
            raise ConfigError(f"merge-gguf: no GGUF tensor for the adapted weight '{hf_name}'")
        by_gguf_name[gguf_name] = delta

    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # the writer writes these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    writer.add_string("icm.finetune.adapter_fingerprint", str(record["adapter_fingerprint"]))
    writer.add_string("icm.finetune.base", str(source.name))
    merged = set()
    for tensor in reader.tensors:
        delta = by_gguf_name.get(tensor.name)
        if delta is None:
            writer.add_tensor(
                tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type
            )
            continue
        weight = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if weight.shape != delta.shape:
            raise ConfigError(
                f"merge-gguf: {tensor.name} is {weight.shape} in {source.name}, its LoRA delta "
                f"{delta.shape}"
            )
        writer.add_tensor(tensor.name, weight + delta)
        merged.add(tensor.name)
    missing = set(by_gguf_name) - merged
    if missing:
        raise ConfigError(f"merge-gguf: {source.name} has no tensor {sorted(missing)[0]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)  # a killed export leaves no half-written merged.gguf
    (out.with_suffix(".json")).write_text(
        json.dumps(
            {
                "adapter": str(adapter),
                "adapter_fingerprint": record["adapter_fingerprint"],
                "base_gguf": str(source),
                "merged_tensors": sorted(merged),
                "merged_dtype": "F32",
            },
            indent=2,
        )
        + "\n"
    )
    return out
