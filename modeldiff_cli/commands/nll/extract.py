"""Hidden states of every layer at the prediction rows (``p - 1`` for each scored target ``p``): from a
forward pass of the model, or from precomputed per-item files (``--hidden-states-dir``)."""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from ...core.data import Sample, collate
from ...core.errors import UserError
from ...core.hooks import capture_layers
from ...core.models import LoadedModel

SUFFIXES = (".safetensors", ".npz")


def forward_states(
    loaded: LoadedModel, seqs: list[list[int]], positions: list[list[int]], pad_id: int
) -> Float[Tensor, "layers n d"]:
    """One batched forward over ``seqs``; every layer's output at rows ``p - 1`` for each target ``p``."""
    batch = collate([Sample(i, s, [True] * len(s)) for i, s in enumerate(seqs)], pad_id).to(loaded.device)
    rows = torch.cat([torch.full((len(p),), i) for i, p in enumerate(positions)]).to(loaded.device)
    cols = torch.cat([torch.tensor(p) - 1 for p in positions]).to(loaded.device)
    n = loaded.adapter.n_layers
    with torch.no_grad(), capture_layers(loaded.adapter.layers, list(range(n))) as store:
        try:
            loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=1, use_cache=False)
        except TypeError:
            loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return torch.stack([store[i][rows, cols] for i in range(n)])


def all_layer_states(loaded: LoadedModel, ids: list[int]) -> Float[Tensor, "layers t d"]:
    """Every layer's output at every position of one sequence (what --save-hidden-states writes)."""
    return forward_states(loaded, [ids], [list(range(1, len(ids) + 1))], 0)


def item_file(directory: Path, item_id: str) -> Path:
    if "/" in item_id or "\\" in item_id or item_id.startswith("."):
        raise UserError(f"--hidden-states-dir: item id {item_id!r} cannot name a file (no slashes, no leading dot)")
    for suffix in SUFFIXES:
        path = directory / f"{item_id}{suffix}"
        if path.is_file():
            return path
    raise UserError(f"--hidden-states-dir {directory}: no file {item_id}.safetensors or {item_id}.npz for item {item_id!r}")


def load_item_states(
    directory: Path, item_id: str, n_layers: int, hidden: int, lengths: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` tensors ``[layers, T, d]`` of one item, checked against the model and the pairs record."""
    path = item_file(directory, item_id)
    tensors = _read(path)
    out = []
    for key, length in zip(("a", "b"), lengths, strict=True):
        if key not in tensors:
            raise UserError(f"{path}: missing condition {key!r} (found: {', '.join(sorted(tensors)) or 'nothing'}); each file needs 'a' and 'b' [layers, T, d]")
        t = tensors[key]
        if t.ndim != 3 or t.shape[0] != n_layers or t.shape[2] != hidden:
            raise UserError(f"{path}: {key!r} has shape {tuple(t.shape)}; expected [{n_layers} layers, T, {hidden}]")
        if t.shape[1] < length - 1:
            raise UserError(f"{path}: {key!r} holds {t.shape[1]} positions but the pairs record has {length} tokens")
        out.append(t)
    return out[0], out[1]


def _read(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".npz":
            import numpy as np

            with np.load(path) as npz:
                return {k: torch.from_numpy(npz[k]) for k in npz.files}
        from safetensors.torch import load_file

        return load_file(str(path))
    except UserError:
        raise
    except Exception as err:  # unreadable file: a user error naming it
        raise UserError(f"{path}: cannot read hidden states ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})") from None


def save_item_states(directory: Path, item_id: str, a: Tensor, b: Tensor) -> Path:
    """Write one item's ``a`` / ``b`` ``[layers, T, d]`` (float32) as ``<id>.npz``."""
    from ...core import artifacts

    return artifacts.write_npz(directory / f"{item_id}.npz", a=a.float().cpu().numpy(), b=b.float().cpu().numpy())


def rows_of(states: Float[Tensor, "layers t d"], positions: list[int]) -> Float[Tensor, "layers n d"]:
    """Prediction rows ``p - 1`` of a ``[layers, T, d]`` tensor."""
    return states[:, torch.tensor(positions) - 1]
