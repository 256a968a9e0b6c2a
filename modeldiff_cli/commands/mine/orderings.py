"""Orderings of the vocabulary built from the accumulated statistics, with token display, filters and
lower-case consolidation. Pure functions: statistics in, JSON-ready dicts out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...core.tokens import consolidation_key, display_token, is_punctuation
from .stats import TokenStats

ORDERINGS = ("top-k-occurring", "fraction-positive-diff", "nmf")
LABELS = {
    "top-k-occurring": "Top-K occurring: % of positions where the token is among the K most promoted",
    "fraction-positive-diff": "Fraction of positions where the fine-tuned logit exceeds the base logit",
}


@dataclass
class TokenView:
    """Display strings of the vocabulary and which ids survive the filters (what is applied is recorded)."""

    strings: list[str]
    keep: Tensor  # bool [V]
    consolidate: bool
    filters: dict

    def groups(self, ids: list[int]) -> list[list[int]]:
        """Ids grouped by consolidation key (first-seen order); each id alone without consolidation."""
        if not self.consolidate:
            return [[i] for i in ids]
        order: dict[str, list[int]] = {}
        for i in ids:
            order.setdefault(consolidation_key(self.strings[i]) or self.strings[i], []).append(i)
        return list(order.values())


def token_view(raw_tokens: list[str], special: set[int], *, filter_punctuation: bool, filter_special: bool,
               consolidate_case: bool) -> TokenView:
    """``raw_tokens[i]`` is the vocabulary entry of id ``i`` (e.g. ``ĠCake``); shown as its decoded text."""
    strings = [display_token(r) for r in raw_tokens]
    keep = torch.ones(len(strings), dtype=torch.bool)
    if filter_special:
        for i in special:
            if 0 <= i < len(strings):
                keep[i] = False
    if filter_punctuation:
        keep &= torch.tensor([not is_punctuation(s) for s in strings], dtype=torch.bool)
    filters = {"filter_punctuation": filter_punctuation, "filter_special": filter_special,
               "consolidate_case": consolidate_case, "tokens_filtered_out": int((~keep).sum())}
    return TokenView(strings, keep, consolidate_case, filters)


def ordering_values(stats: TokenStats, kind: str) -> Tensor:
    """float64 [V]: top-k-occurring = count in top-K positive / positions x 100; fraction-positive-diff =
    count of positive diffs / positions."""
    n = max(stats.total_positions, 1)
    if kind == "top-k-occurring":
        return stats.count_topk_pos.double() / n * 100.0
    if kind == "fraction-positive-diff":
        return stats.count_positive.double() / n
    raise ValueError(kind)


def entry(stats: TokenStats, view: TokenView, ids: list[int], value: float) -> dict:
    n = max(stats.total_positions, 1)
    first = ids[0]
    item = {
        "token_id": first,
        "token_str": view.strings[first],
        "ordering_value": float(value),
        "avg_logit_diff": float(stats.sum_diff[ids].sum() / (n * len(ids))),
        "count_positive": int(stats.count_topk_pos[ids].sum()),
        "count_negative": int(stats.count_topk_neg[ids].sum()),
    }
    if len(ids) > 1:
        item["merged_token_ids"] = ids
        item["merged_token_strs"] = [view.strings[i] for i in ids]
    return item


def rank(values: Tensor, view: TokenView, stats: TokenStats, top_n: int, kind: str) -> list[dict]:
    """Kept tokens ranked by value (ties: lower id first); consolidated groups merge their statistics:
    counts are summed (top-k-occurring), fractions averaged over the group's members."""
    vals = values.clone().double()
    vals[~view.keep[: vals.shape[0]]] = float("-inf")
    order = torch.argsort(-vals, stable=True)
    kept = int(torch.isfinite(vals).sum())
    # enough candidates to fill top_n groups after merging case variants
    cand = order[: min(kept, top_n * (4 if view.consolidate else 1))].tolist()
    rows = []
    for ids in view.groups(cand):
        if view.consolidate:
            ids = sorted(set(ids) | _variants(view, ids[0], values.shape[0]), key=lambda i: -float(values[i]))
        group_val = values[ids].sum() if kind == "top-k-occurring" else values[ids].mean()
        rows.append(entry(stats, view, ids, float(group_val)))
    rows.sort(key=lambda r: (-r["ordering_value"], r["token_id"]))
    return rows[:top_n]


def _variants(view: TokenView, i: int, vocab: int) -> set[int]:
    key = consolidation_key(view.strings[i])
    index = getattr(view, "_key_index", None)
    if index is None:
        index = {}
        for j in range(vocab):
            if view.keep[j]:
                index.setdefault(consolidation_key(view.strings[j]), set()).add(j)
        view._key_index = index  # type: ignore[attr-defined]
    return index.get(key, {i})


def make_ordering(kind: str, dataset: str, stats: TokenStats, view: TokenView, top_n: int, extra: dict | None = None) -> dict:
    values = ordering_values(stats, kind)
    return {
        "ordering_id": kind,
        "display_label": LABELS[kind],
        "tokens": rank(values, view, stats, top_n, kind),
        "metadata": {"dataset": dataset, "total_positions": stats.total_positions, "top_k": stats.top_k,
                     **view.filters, **(extra or {})},
    }
