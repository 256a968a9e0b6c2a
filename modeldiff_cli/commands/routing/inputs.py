"""Routing's inputs as aligned batches: which positions of each side are analysed, in which views, and which
positions the sweep scores (teacher-forced targets).

- ``models``: one data source through base and ft (the same batches on both sides, rows aligned);
- ``data``: two data sources through one model (each side its own batches, no alignment);
- ``pairs``: the items of a pairs file (`nll --pairs`' reader) through one model, row i of A aligned with row i
  of B (the listed positions, or every position but the first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...core.data.datasets import Dataset, iter_batches, load_dataset
from ...core.model.padding import pad


@dataclass
class SideBatch:
    """One batch of one side."""

    ids: Tensor  # [B, T] right-padded token ids
    attn: Tensor  # [B, T] 1 = real token
    rows: Tensor  # [N] flat indices (into B * T) of the analysed positions, in aligned order
    sample: Tensor  # [N] sample number of each row (0 .. samples - 1)
    views: Tensor  # [V, N] bool, rows in each view
    targets: Tensor  # [B, T] bool, positions whose token the sweep scores (predicted from the position before)


@dataclass
class Models:
    a: object  # core.model.loading.LoadedModel of side A (base, or the one model)
    b: object  # side B (ft, or the same model)
    tokenizer: object


@dataclass
class Inputs:
    mode: str
    views: list[str]
    a: list[SideBatch]
    b: list[SideBatch]
    paired: bool  # a[i] and b[i] hold aligned rows (models and pairs modes)
    n_samples: tuple[int, int]
    names: tuple[str, str]  # data names of the two sides


def view_names(first_n: int, chat: bool) -> list[str]:
    return ["all", "last", f"first{first_n}", *(["assistant"] if chat else [])]


def _views(per_sample: list[list[int]], first_n: int, extra: list[list[bool]] | None) -> Tensor:
    """[V, N] views of rows listed per sample in order: all, last, first N (, assistant)."""
    rows = []
    for s, positions in enumerate(per_sample):
        n = len(positions)
        for r in range(n):
            flags = [True, r == n - 1, r < first_n]
            if extra is not None:
                flags.append(bool(extra[s][r]))
            rows.append(flags)
    n_views = 3 + (extra is not None)
    return torch.tensor(rows, dtype=torch.bool).reshape(-1, n_views).T.contiguous()


def _batch(ids: list[list[int]], positions: list[list[int]], targets: list[list[int]], samples: list[int],
           pad_id: int, first_n: int, assistant: list[list[bool]] | None) -> SideBatch:
    grid, attn = pad(ids, pad_id)
    T = grid.shape[1]
    rows = torch.tensor([b * T + p for b, ps in enumerate(positions) for p in ps], dtype=torch.long)
    sample = torch.tensor([s for s, ps in zip(samples, positions, strict=True) for _ in ps], dtype=torch.long)
    tmask = torch.zeros_like(grid, dtype=torch.bool)
    for b, ts in enumerate(targets):
        tmask[b, ts] = True
    return SideBatch(grid, attn, rows, sample, _views(positions, first_n, assistant), tmask)


def batches_of(dataset: Dataset, batch_size: int, pad_id: int, first_n: int, offset: int = 0) -> list[SideBatch]:
    """Every real token analysed (the assistant view marks the data's position mask of chat data); the sweep
    scores the positions of the data's mask (all tokens but the first, or the assistant tokens)."""
    out = []
    number = {s.index: i + offset for i, s in enumerate(dataset.samples)}
    for start in range(0, len(dataset.samples), batch_size):
        chunk = dataset.samples[start: start + batch_size]
        positions = [list(range(len(s.ids))) for s in chunk]
        targets = [[p for p in range(1, len(s.ids)) if s.mask[p]] for s in chunk]
        assistant = [list(s.mask) for s in chunk] if dataset.chat else None
        out.append(_batch([s.ids for s in chunk], positions, targets, [number[s.index] for s in chunk], pad_id,
                          first_n, assistant))
    return out


def load_inputs(cmd) -> tuple[Models, Inputs]:
    """Load the model(s) and read the inputs of the command's mode."""
    d = cmd.data
    if cmd.mode == "models":
        pair = cmd.compared.load()
        tok = pair.tokenizer
        models = Models(pair.base, pair.ft, tok)
        data = d.load(tok)[0]
        batches = batches_of(data, d.batch_size, tok.pad_token_id or 0, cmd.first_n)
        views = view_names(cmd.first_n, data.chat)
        n = len(data.samples)
        return models, Inputs("models", views, batches, batches, True, (n, n), (data.name, data.name))
    loaded = cmd.compared.load()
    tok = loaded.tokenizer
    models = Models(loaded, loaded, tok)
    pad_id = tok.pad_token_id or 0
    if cmd.mode == "data":
        sets = [load_dataset(path, tok, text_field=d.text_field, max_samples=d.max_samples, max_tokens=d.max_tokens,
                             flag=flag) for path, flag in ((cmd.compared.data_a, "--data-a"), (cmd.compared.data_b, "--data-b"))]
        chat = all(s.chat for s in sets)
        a, b = (batches_of(s, d.batch_size, pad_id, cmd.first_n) for s in sets)
        if not chat:
            for side in (a, b):
                for batch in side:
                    batch.views = batch.views[:3]
        return models, Inputs("data", view_names(cmd.first_n, chat), a, b, False,
                              (len(sets[0].samples), len(sets[1].samples)), (sets[0].name, sets[1].name))
    from ...core.data.pairs import items_from_pairs

    vocab = int(loaded.model.get_input_embeddings().weight.shape[0])
    items = items_from_pairs(cmd.compared.pairs, tok, cmd.compared.fields(), vocab, d.max_samples).items
    a, b = [], []
    for start in range(0, len(items), d.batch_size):
        chunk = items[start: start + d.batch_size]
        numbers = list(range(start, start + len(chunk)))
        a.append(_batch([it.a_ids for it in chunk], [it.a_positions for it in chunk], [it.a_positions for it in chunk],
                        numbers, pad_id, cmd.first_n, None))
        b.append(_batch([it.b_ids for it in chunk], [it.b_positions for it in chunk], [it.b_positions for it in chunk],
                        numbers, pad_id, cmd.first_n, None))
    return models, Inputs("pairs", view_names(cmd.first_n, False), a, b, True, (len(items), len(items)),
                          cmd.sides)


__all__ = ["Inputs", "Models", "SideBatch", "batches_of", "iter_batches", "load_inputs"]
