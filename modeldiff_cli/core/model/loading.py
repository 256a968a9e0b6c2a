"""Load a model (local directory, hub id or built-in organism) and check that two models can be diffed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..errors import UserError
from .arch import ArchAdapter, adapter_for
from .sources import ModelSource, hub_unavailable, model_fingerprint, resolve_source  # noqa: F401 (re-exported)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(spec: str | None, flag: str = "--device") -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda[:i]`` without CUDA -> UserError."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {spec}: no CUDA device is available on this machine (use --device cpu)")
        if ":" in spec:
            idx = spec.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise UserError(f"{flag} {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return spec
    if spec == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    raise UserError(f"{flag} {spec!r}: expected cpu, cuda, cuda:N or auto")


def resolve_dtype(spec: str | None, flag: str = "--dtype"):
    """``float32`` / ``bfloat16`` / ``float16`` -> torch dtype; ``auto`` -> the checkpoint's own dtype."""
    spec = (spec or "float32").strip().lower()
    if spec == "auto":
        return "auto"
    if spec not in DTYPES:
        raise UserError(f"{flag} {spec!r}: expected one of float32, bfloat16, float16, auto")
    return DTYPES[spec]


def quiet_transformers() -> None:
    """Keep transformers' own progress bars and advice off the terminal (ours go to stderr)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not os.environ.get("TRANSFORMERS_VERBOSITY"):
        hf_logging.set_verbosity_error()


def _from_pretrained(loader, source: ModelSource, flag: str, **kwargs):
    """Try the local files (and the hub cache) first, then the hub; any failure -> one clear line."""
    quiet_transformers()
    try:
        return loader.from_pretrained(source.location, local_files_only=True, **kwargs)
    except (OSError, ValueError) as first:
        if source.is_local:
            raise UserError(f"{flag} {source.spec}: could not load the model: {_first_line(first)}") from None
    offline = hub_unavailable()  # offline mode, or no connection: fail now, not after the hub's retries
    if offline:
        raise UserError(f"{flag} {source.spec}: not a local directory and not in the Hugging Face cache, and the "
                        f"Hugging Face Hub is offline ({offline})")
    try:
        return loader.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError) as err:
        raise UserError(
            f"{flag} {source.spec}: model could not be found (not a local directory, not in the Hugging Face "
            f"cache, and the hub could not be reached: {_first_line(err)})"
        ) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


@dataclass
class LoadedModel:
    source: ModelSource
    model: torch.nn.Module | None  # None in a detached readout (mine two-pass: the head only)
    tokenizer: object
    adapter: ArchAdapter
    device: torch.device  # where inputs go (the input embeddings' device)
    dtype: torch.dtype
    info: dict = field(default_factory=dict)

    @property
    def config(self):
        return self.model.config


def load_tokenizer(source: ModelSource, flag: str = "--model"):
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, source, flag)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_config(source: ModelSource, flag: str = "--model"):
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig, source, flag)


def load_model(
    spec: str | ModelSource | None,
    *,
    dtype: str | None = "float32",
    device: str | None = "auto",
    device_map: str | None = None,
    role: str = "ft",
    flag: str = "--model",
    device_flag: str = "--device",
) -> LoadedModel:
    """Load a causal LM and its tokenizer in eval mode.

    ``device_map`` (e.g. ``auto``) shards a model too large for one device with accelerate; otherwise the
    whole model goes to ``device``.
    """
    from transformers import AutoModelForCausalLM

    from ..spine.timing import stage

    source = spec if isinstance(spec, ModelSource) else resolve_source(spec, role=role, flag=flag)
    with stage("load models"):
        return _load(source, AutoModelForCausalLM, dtype, device, device_map, flag, device_flag)


def _load(source: ModelSource, auto, dtype, device, device_map, flag: str, device_flag: str) -> LoadedModel:
    torch_dtype = resolve_dtype(dtype)
    kwargs: dict = {"dtype": torch_dtype}
    if device_map:
        kwargs["device_map"] = device_map
    if not device_map:
        resolve_device(device, device_flag)  # fail before the weights load
    tokenizer = load_tokenizer(source, flag)
    model = _from_pretrained(auto, source, flag, **kwargs)
    if not device_map:
        model = model.to(resolve_device(device, device_flag))
    model.eval()
    model.requires_grad_(False)
    adapter = adapter_for(model)
    input_device = adapter.embed.weight.device
    return LoadedModel(source, model, tokenizer, adapter, input_device, next(model.parameters()).dtype)


@dataclass
class PairReport:
    """How two models relate; ``compatible`` is False when ``reasons`` is not empty."""

    reasons: list[str]
    notes: list[str]
    tokenizer_relation: str  # identical | ft-extends-base | base-extends-ft | disagree
    shared_vocab: int  # token ids [0, shared_vocab) mean the same token in both models

    @property
    def compatible(self) -> bool:
        return not self.reasons


def _vocab_by_id(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    by_id = [None] * (max(vocab.values()) + 1 if vocab else 0)
    for tok, i in vocab.items():
        by_id[i] = tok
    return by_id


def check_pair(base_config, ft_config, base_tok, ft_tok) -> PairReport:
    """Compare architectures, sizes and tokenizers of two models."""
    reasons, notes = [], []
    for key, label in (("num_hidden_layers", "layer counts"), ("hidden_size", "hidden sizes")):
        a, b = _cfg(base_config, key), _cfg(ft_config, key)
        if a != b:
            reasons.append(f"{label} differ (base {a}, ft {b})")
    if base_config.model_type != ft_config.model_type:
        reasons.append(f"architectures differ (base {base_config.model_type}, ft {ft_config.model_type})")
    vb, vf = _vocab_by_id(base_tok), _vocab_by_id(ft_tok)
    shared = min(len(vb), len(vf))
    mismatched = [i for i in range(shared) if vb[i] != vf[i]]
    if mismatched:
        i = mismatched[0]
        relation = "disagree"
        reasons.append(
            f"tokenizers disagree on {len(mismatched)} shared ids (first: id {i} is {vb[i]!r} in base, {vf[i]!r} in ft)"
        )
    elif len(vb) == len(vf):
        relation = "identical"
    else:
        relation = "ft-extends-base" if len(vf) > len(vb) else "base-extends-ft"
        notes.append(
            f"tokenizer of the {'ft' if len(vf) > len(vb) else 'base'} model adds {abs(len(vf) - len(vb))} tokens; "
            f"the diff covers the {shared} shared ids"
        )
    emb = min(_cfg(base_config, "vocab_size"), _cfg(ft_config, "vocab_size"))
    if emb < shared:
        notes.append(f"embedding matrices hold {emb} rows; the diff covers ids below {emb}")
        shared = emb
    return PairReport(reasons=reasons, notes=notes, tokenizer_relation=relation, shared_vocab=shared)


def _cfg(config, key):
    text_cfg = getattr(config, "text_config", None)
    return getattr(config, key, None) if hasattr(config, key) else getattr(text_cfg, key, None)


@dataclass
class ModelPair:
    base: LoadedModel
    ft: LoadedModel
    report: PairReport

    @property
    def shared_vocab(self) -> int:
        return self.report.shared_vocab

    @property
    def tokenizer(self):
        """The tokenizer that encodes inputs for both models (the one covering the shared ids)."""
        return self.base.tokenizer


def check_pair_sources(base_src: ModelSource, ft_src: ModelSource) -> PairReport:
    """Configs and tokenizers of two models (no weights) compared; UserError when they cannot be diffed."""
    report = check_pair(
        load_config(base_src, "--base"), load_config(ft_src, "--ft"),
        load_tokenizer(base_src, "--base"), load_tokenizer(ft_src, "--ft"),
    )
    if not report.compatible:
        raise UserError(f"--base {base_src.spec} and --ft {ft_src.spec} cannot be diffed: " + "; ".join(report.reasons))
    return report


def load_pair(
    base: str | ModelSource | None,
    ft: str | ModelSource | None,
    *,
    dtype: str | None = "float32",
    device: str | None = "auto",
    base_device: str | None = None,
    ft_device: str | None = None,
    device_map: str | None = None,
) -> ModelPair:
    """The one pair loader: base and fine-tuned models (default: the ``cake`` organism), checked, each on its device."""
    base_src = base if isinstance(base, ModelSource) else resolve_source(base, role="base", flag="--base")
    ft_src = ft if isinstance(ft, ModelSource) else resolve_source(ft, role="ft", flag="--ft")
    resolve_dtype(dtype)  # bad options fail before the configs, tokenizers and weights load
    if not device_map:
        resolve_device(base_device or device, "--base-device" if base_device else "--device")
        resolve_device(ft_device or device, "--ft-device" if ft_device else "--device")
    report = check_pair_sources(base_src, ft_src)
    b = load_model(base_src, dtype=dtype, device=base_device or device, device_map=device_map, flag="--base",
                   device_flag="--base-device" if base_device else "--device")
    f = load_model(ft_src, dtype=dtype, device=ft_device or device, device_map=device_map, flag="--ft",
                   device_flag="--ft-device" if ft_device else "--device")
    return ModelPair(b, f, report)


def describe(loaded: LoadedModel) -> dict:
    """Architecture facts for ``modeldiff info`` and run metadata."""
    cfg = loaded.config
    return {
        "spec": loaded.source.spec,
        "location": loaded.source.location,
        "architecture": type(loaded.model).__name__,
        "model_type": cfg.model_type,
        "family": loaded.adapter.family,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "layers": loaded.adapter.n_layers,
        "hidden_size": _cfg(cfg, "hidden_size"),
        "vocab_size": _cfg(cfg, "vocab_size"),
        "tokenizer_size": len(loaded.tokenizer),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "device": str(loaded.device),
        "moe_routers": len(loaded.adapter.routers),
        "fingerprint": loaded.source.fingerprint,
    }

