"""Step 4: a feature's name, built from evidence only: the first name-worthy tokens of the list the feature
shows (its ``tokens``, in their order), its strongest category, its side and its layer:
``"telescope / planet / orbit - astronomy - ft-only - layer 2"``.

Name material is a word: letters only (after the leading space), at least two of them, not a stop-word (the
short function words every text is full of), and not a word piece (a lower-case token without the leading space
a word-initial BPE / SentencePiece token carries, such as "esday" or "ing"). When fewer than three tokens qualify
the name has fewer words; with none, the first non-blank token stands in, so every name says something."""

from __future__ import annotations

from ...core.data.tokens import display_tokens, visible

NAME_WORDS = 3
STOP_WORDS = frozenset("""
a an the and or but nor so yet of to in on at by for with from into onto upon over under about after before
as is are was were be been being am do does did done have has had having it its it's this that these those
there here then than too very not no yes i me my we us our you your he him his she her they them their
what which who whom whose when where why how all any both each few more most other some such own same
can could will would shall should may might must up down out off again once just also only if because while
""".split())


def name_worthy(text: str) -> bool:
    """True for a display token that may name a feature (see the module docstring)."""
    word = text.strip()
    if len(word) < 2 or not word.isalpha() or word.lower() in STOP_WORDS:
        return False
    word_initial = text[:1].isspace() or word[0].isupper()
    return word_initial


def name_tokens(tokenizer, token_ids: list[int], n: int = NAME_WORDS) -> list[int]:
    """The first ``n`` name-worthy tokens of ``token_ids``, in order (distinct words); with none, the first
    token that is not blank."""
    shown = display_tokens(tokenizer, token_ids)
    out, words = [], set()
    for tid, text in zip(token_ids, shown, strict=True):
        if name_worthy(text) and text.strip().lower() not in words:
            out.append(tid)
            words.add(text.strip().lower())
            if len(out) == n:
                break
    if not out:
        out = [t for t, text in zip(token_ids, shown, strict=True) if text.strip()][:1]
    return out


def best_category(scores: dict[str, float]) -> str:
    return max(scores, key=lambda c: scores[c])


def feature_name(tokenizer, token_ids: list[int], category: str, side: str, layer: int) -> str:
    words = list(dict.fromkeys(visible(t).strip() or visible(t) for t in display_tokens(tokenizer, token_ids)))
    return f"{' / '.join(words) or '?'} - {category} - {side} - layer {layer}"
