"""Hidden states of every layer at the prediction rows (``p - 1`` for each scored target ``p``): from the one
forward path (``core.model.forward``), or from precomputed per-item files (``--hidden-states-dir``, which
``--save-hidden-states`` writes into the run directory as ``hidden_states/<id>.npz``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...core.errors import UserError
from ...core.model.forward import forward
from ...core.model.loading import LoadedModel
from ...core.model.padding import pad
from ...core.typing import LayerHidden, LayerSequenceHidden

SUFFIXES = (".safetensors", ".npz")


def forward_layers(loaded: LoadedModel, seqs: list[list[int]], pad_id: int) -> Tensor:
    """One batched forward over ``seqs`` (right-padded): every layer's output ``[layers, B, T, d]``."""
    ids, mask = pad(seqs, pad_id)
    n = loaded.adapter.n_layers
    cap = forward(loaded, ids, mask, layers=list(range(n)))
    return torch.stack([cap.layers[i] for i in range(n)])


def prediction_rows(states: Tensor, positions: list[list[int]]) -> LayerHidden:
    """Rows ``p - 1`` of batch row ``i`` for each target ``p`` of ``positions[i]``, from ``[layers, B, T, d]``."""
    rows = torch.cat([torch.full((len(p),), i) for i, p in enumerate(positions)]).to(states.device)
    cols = torch.cat([torch.tensor(p) - 1 for p in positions]).to(states.device)
    return states[:, rows, cols]


def _check_id(item_id: str, flag: str = "--hidden-states-dir") -> None:
    if "/" in item_id or "\\" in item_id or item_id.startswith("."):
        raise UserError(f"{flag}: item id {item_id!r} cannot name a file (no slashes, no leading dot)")


def item_file(directory: Path, item_id: str) -> Path:
    _check_id(item_id)
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


def save_item_states(root: Path, item_id: str, a: Tensor, b: Tensor) -> Path:
    """Write one item's ``a`` / ``b`` ``[layers, T, d]`` (float32) into the run directory ``root`` as
    ``hidden_states/<id>.npz`` (``artifacts.HIDDEN_STATES``; A and B may differ in T)."""
    from ...core.spine import artifacts
    from .artifacts import HIDDEN_STATES

    _check_id(item_id, "--save-hidden-states")
    return artifacts.write_npz(root / HIDDEN_STATES.path(id=item_id), a=a.float().cpu().numpy(), b=b.float().cpu().numpy())


def rows_of(states: LayerSequenceHidden, positions: list[int]) -> LayerHidden:
    """Prediction rows ``p - 1`` of a ``[layers, T, d]`` tensor."""
    return states[:, torch.tensor(positions) - 1]
