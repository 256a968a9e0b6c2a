"""Per-layer scores of aligned target positions (pure tensor code, float32, chunked readouts).

For every layer and every scored position: NLL of the target in condition A and B, whether the target is the
top-1 token, and (optionally) JS(A, B) between the two conditions' distributions at aligned positions.
Memory: ``O(layers x positions)`` results plus one ``chunk x vocab`` block per condition at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...core.model.divergence import js, nll, target_is_top1
from ...core.model.readout import Reader, chunk_rows
from ...core.typing import LayerHidden, LayerRowScores, RowMask, RowTokens


def score_layers(
    read_a: Reader,
    read_b: Reader,
    ha: LayerHidden,
    hb: LayerHidden,
    ta: RowTokens,
    tb: RowTokens,
    js_rows: RowMask | None,
    shared_vocab: int,
    chunk_size: int | None,
) -> dict[str, Tensor]:
    """Read both conditions' rows with ``core.model.readout`` readers (``make_reader(loaded, "logit-lens")``):
    ``nll_a``, ``nll_b``, ``top1_a``, ``top1_b`` ``[layers, n]``; ``js`` ``[layers, n]`` (NaN off ``js_rows``)."""
    L, n = ha.shape[0], ha.shape[1]
    chunk_size = chunk_rows(chunk_size, ha.device, shared_vocab)
    out = {k: torch.zeros(L, n) for k in ("nll_a", "nll_b", "top1_a", "top1_b")}
    out["js"] = torch.full((L, n), float("nan"))
    for layer in range(L):
        for start in range(0, n, chunk_size):
            rows = slice(start, min(start + chunk_size, n))
            la = torch.log_softmax(read_a(layer, ha[layer, rows]).float(), dim=-1)
            lb = torch.log_softmax(read_b(layer, hb[layer, rows]).float(), dim=-1)
            a_t, b_t = ta[rows].to(la.device), tb[rows].to(lb.device)
            out["nll_a"][layer, rows] = nll(la, a_t).cpu()
            out["nll_b"][layer, rows] = nll(lb, b_t).cpu()
            out["top1_a"][layer, rows] = target_is_top1(la, a_t).cpu()
            out["top1_b"][layer, rows] = target_is_top1(lb, b_t).cpu()
            if js_rows is not None:
                sel = js_rows[rows]
                if sel.any():
                    va = torch.log_softmax(la[sel.to(la.device), :shared_vocab], -1) if la.shape[-1] != shared_vocab else la[sel.to(la.device)]
                    vb = torch.log_softmax(lb[sel.to(lb.device), :shared_vocab], -1) if lb.shape[-1] != shared_vocab else lb[sel.to(lb.device)]
                    block = out["js"][layer, rows]
                    block[sel] = js(va, vb.to(va.device)).cpu()
                    out["js"][layer, rows] = block
    return out


def item_views(values: LayerRowScores, item: RowTokens, last: RowMask, n_items: int):
    """Per item x layer: mean over the item's positions (``all``) and value at its last position (``last``)."""
    L = values.shape[0]
    ok = ~torch.isnan(values)
    sums = torch.zeros(n_items, L, dtype=torch.float64).index_add_(0, item, torch.where(ok, values, 0).double().T)
    counts = torch.zeros(n_items, L, dtype=torch.float64).index_add_(0, item, ok.double().T)
    mean_all = (sums / counts).float()  # NaN where an item has no valid position
    last_vals = torch.full((n_items, L), float("nan"))
    last_vals[item[last]] = values[:, last].T
    return mean_all, last_vals, sums, counts
