"""Token display and filters: byte-level BPE markers decoded (Ġ -> space, Ċ -> newline), SentencePiece's ▁,
punctuation-only, undecodable (byte fragments) and special-token filters, and lower-case consolidation of equal
forms."""

from __future__ import annotations

import string
import unicodedata
from functools import lru_cache


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table (printable stand-ins for the 256 byte values)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def display_token(raw: str) -> str:
    """Human-readable form of a vocabulary entry: byte-level markers decoded to the text they stand for."""
    if raw is None:
        return ""
    if raw.startswith("<") and raw.endswith(">") and len(raw) > 2:
        return raw  # special / added tokens stay as written
    table = _byte_decoder()
    if all(ch in table for ch in raw):
        data = bytes(table[ch] for ch in raw)
        return data.decode("utf-8", errors="replace")
    return raw.replace("▁", " ")


def display_tokens(tokenizer, ids) -> list[str]:
    raws = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    return [display_token(r) for r in raws]


def visible(text: str) -> str:
    """Display string for tables and plots: whitespace made visible (newline -> \\n, tab -> \\t)."""
    return text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "—", "–", "…", "«", "»"}


def is_punctuation(text: str) -> bool:
    """True for tokens made only of punctuation and/or whitespace (including empty)."""
    stripped = "".join(ch for ch in text if not ch.isspace())
    return all(ch in _PUNCT or unicodedata.category(ch).startswith("P") for ch in stripped)


def special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    return {int(i) for i in ids if i is not None}


def is_undecodable(text: str) -> bool:
    """True for tokens that are not text on their own: byte fragments of a multi-byte character (decoded with
    U+FFFD, shown as �). Byte-level vocabularies hold hundreds; an untrained one can top any logit reading."""
    return "\ufffd" in text


def consolidation_key(text: str) -> str:
    """Key under which equal forms merge: stripped and lower-cased (`` Cake``, ``cake``, ``CAKE`` -> ``cake``)."""
    return text.strip().lower()
