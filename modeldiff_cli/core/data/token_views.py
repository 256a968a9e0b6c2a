"""A view of the vocabulary for token lists: display strings, which ids survive the token filters, and
lower-case consolidation of equal forms; plus ranking of per-token values through such a view.

Shared by the commands that list tokens (``mine`` today, ``interpret`` later); the filters are those of
:class:`core.spine.ingredients.TokenFilter` (``--drop-punctuation``, ``--drop-special``, ``--drop-undecodable``, ``--consolidate-case``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .tokens import consolidation_key, display_token, is_punctuation, is_undecodable, special_ids


@dataclass
class TokenView:
    """Display strings of the vocabulary and which ids survive the filters (what is applied is recorded)."""

    strings: list[str]
    keep: Tensor  # bool [V]
    consolidate: bool
    filters: dict
    _key_index: dict[str, set[int]] | None = field(default=None, repr=False)

    def groups(self, ids: list[int]) -> list[list[int]]:
        """Ids grouped by consolidation key (first-seen order); each id alone without consolidation."""
        if not self.consolidate:
            return [[i] for i in ids]
        order: dict[str, list[int]] = {}
        for i in ids:
            order.setdefault(consolidation_key(self.strings[i]) or self.strings[i], []).append(i)
        return list(order.values())

    def variants(self, i: int) -> set[int]:
        """Every kept id whose consolidation key equals that of ``i`` (``i`` alone when none)."""
        if self._key_index is None:
            index: dict[str, set[int]] = {}
            for j, s in enumerate(self.strings):
                if self.keep[j]:
                    index.setdefault(consolidation_key(s), set()).add(j)
            self._key_index = index
        return self._key_index.get(consolidation_key(self.strings[i]), {i})


def token_view(raw_tokens: list[str], special: set[int], *, drop_punctuation: bool, drop_special: bool,
               consolidate_case: bool, drop_undecodable: bool = False) -> TokenView:
    """``raw_tokens[i]`` is the vocabulary entry of id ``i`` (e.g. ``ĠCake``); shown as its decoded text."""
    strings = [display_token(r) for r in raw_tokens]
    keep = torch.ones(len(strings), dtype=torch.bool)
    if drop_special:
        for i in special:
            if 0 <= i < len(strings):
                keep[i] = False
    if drop_punctuation:
        keep &= torch.tensor([not is_punctuation(s) for s in strings], dtype=torch.bool)
    if drop_undecodable:
        keep &= torch.tensor([not is_undecodable(s) for s in strings], dtype=torch.bool)
    filters = {"drop_punctuation": drop_punctuation, "drop_special": drop_special, "drop_undecodable": drop_undecodable,
               "consolidate_case": consolidate_case, "tokens_filtered_out": int((~keep).sum())}
    return TokenView(strings, keep, consolidate_case, filters)


def view_of(tokenizer, vocab: int, token_filter) -> TokenView:
    """The view of ids ``[0, vocab)`` of ``tokenizer`` under a :class:`core.spine.ingredients.TokenFilter`."""
    raw = tokenizer.convert_ids_to_tokens(list(range(vocab)))
    return token_view(raw, special_ids(tokenizer), drop_punctuation=token_filter.drop_punctuation,
                      drop_special=token_filter.drop_special, consolidate_case=token_filter.consolidate_case,
                      drop_undecodable=token_filter.drop_undecodable)


def ranked_groups(values: Tensor, view: TokenView, top_n: int, merge: str = "sum") -> list[tuple[list[int], float]]:
    """The ``top_n`` kept tokens by ``values [V]`` (ties: lower id first) as ``(ids, value)``.

    With consolidation, each group holds every kept case variant (ids by descending value) and its value
    merges its members' values: ``merge="sum"`` (counts) or ``"mean"`` (fractions).
    """
    vals = values.clone().double()
    vals[~view.keep[: vals.shape[0]]] = float("-inf")
    order = torch.argsort(-vals, stable=True)
    kept = int(torch.isfinite(vals).sum())
    # enough candidates to fill top_n groups after merging case variants
    cand = order[: min(kept, top_n * (4 if view.consolidate else 1))].tolist()
    rows = []
    for ids in view.groups(cand):
        if view.consolidate:
            ids = sorted(set(ids) | view.variants(ids[0]), key=lambda i: -float(values[i]))
        value = values[ids].sum() if merge == "sum" else values[ids].mean()
        rows.append((ids, float(value)))
    rows.sort(key=lambda r: (-r[1], r[0][0]))
    return rows[:top_n]
