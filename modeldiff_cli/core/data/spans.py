"""The one completion-span finder: which tokens of a text cover a character span.

A token covers ``[lo, hi)`` when its own (non-empty) character range overlaps it; so a leading space that BPE
merges into the first completion token puts that token in the completion. Used for prompt/completion records
(nll, attribute queries and documents) and for chat assistant turns (``core.data.datasets``).
"""

from __future__ import annotations

from collections.abc import Sequence


def covering(offsets: Sequence[tuple[int, int]], lo: int, hi: int) -> list[int]:
    """Indices of the tokens whose character range ``(a, b)`` overlaps ``[lo, hi)`` (empty tokens excluded)."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and b > lo and a < hi]


def completion_tokens(tokenizer, prompt: str, completion: str, *, add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt + completion`` and the indices of the tokens that cover the completion."""
    text = prompt + completion
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return list(enc["input_ids"]), covering(enc["offset_mapping"], len(prompt), len(text))
