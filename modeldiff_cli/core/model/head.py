"""Load only the readout of a model (final norm + lm_head) for precomputed hidden states.

The model is built from its config on the ``meta`` device (no memory for the decoder layers), then only the
final norm's and lm_head's tensors are read from the checkpoint (safetensors, single file or sharded) and
materialised on the chosen device. A tied lm_head falls back to the input-embedding tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from .arch import adapter_for
from .loading import LoadedModel, ModelSource, load_config, load_tokenizer, resolve_device, resolve_dtype


def load_head(source: ModelSource, *, dtype: str = "float32", device: str = "auto") -> LoadedModel:
    from transformers import AutoModelForCausalLM

    if not source.is_local:
        raise UserError(f"--model {source.spec}: --hidden-states-dir needs a local model directory (or organism)")
    config = load_config(source, "--model")
    tokenizer = load_tokenizer(source, "--model")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    adapter = adapter_for(model)
    names = {id(m): n for n, m in model.named_modules()}
    embed_name = names[id(adapter.embed)]
    files = _weight_files(Path(source.location))
    torch_dtype = resolve_dtype(dtype)
    torch_dtype = torch.float32 if torch_dtype == "auto" else torch_dtype
    dev = torch.device(resolve_device(device))
    for module, fallback in ((adapter.final_norm, None), (adapter.lm_head, embed_name)):
        prefix = names[id(module)]
        state = {}
        for pname, _ in module.named_parameters(recurse=True):
            key = f"{prefix}.{pname}"
            alt = f"{fallback}.{pname}" if fallback else None
            tensor = _find(files, [key, alt, key.split(".", 1)[-1]], source)
            state[pname] = tensor.to(device=dev, dtype=torch_dtype)
        module.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return LoadedModel(source, model, tokenizer, adapter, dev, torch_dtype, info={"head_only": True})


def _weight_files(root: Path) -> list[Path]:
    index = root / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [root / s for s in shards]
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise UserError(f"--model {root}: no .safetensors weights (needed to load only the final norm and lm_head)")
    return files


def _find(files: list[Path], keys: list[str | None], source: ModelSource) -> torch.Tensor:
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            present = set(fh.keys())
            for key in keys:
                if key and key in present:
                    return fh.get_tensor(key)
    raise UserError(f"--model {source.spec}: checkpoint has no tensor {keys[0]!r}")
