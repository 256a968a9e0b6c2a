"""Step 4: a feature's name, built from evidence only: its top tokens (logit lens of its direction, those that
also occur in its top contexts first), its strongest category, its side and its layer:
``"telescope / planet / orbit - astronomy - ft-only - layer 2"``."""

from __future__ import annotations

from ...core.tokens import display_tokens, visible


def name_tokens(promoted: list[int], context_tokens: set[int] | None, n: int = 3) -> list[int]:
    """The first ``n`` promoted tokens that occur in the feature's contexts (all promoted ones when too few)."""
    if context_tokens:
        hits = [t for t in promoted if t in context_tokens]
        if len(hits) >= n:
            return hits[:n]
        return (hits + [t for t in promoted if t not in hits])[:n]
    return promoted[:n]


def best_category(scores: dict[str, float]) -> str:
    return max(scores, key=lambda c: scores[c])


def feature_name(tokenizer, token_ids: list[int], category: str, side: str, layer: int) -> str:
    words = list(dict.fromkeys(visible(t).strip() or visible(t) for t in display_tokens(tokenizer, token_ids)))
    return f"{' / '.join(words)} - {category} - {side} - layer {layer}"
