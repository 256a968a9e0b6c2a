"""Small formatters for the index's headline column (each command's ``@headliner``): tokens as the user reads
them (quoted, leading spaces kept, newlines escaped), numbers to three significant figures, lists with a count."""

from __future__ import annotations


def num(value, digits: int = 3) -> str:
    """A number to ``digits`` significant figures (an int as it is); anything else as text, None as '?'."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def signed(value, digits: int = 3) -> str:
    return f"{value:+.{digits}g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else num(value)


def token(text) -> str:
    """One token quoted, so a leading space or a newline shows: ``' cake'``, ``'\\n'``."""
    t = str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return f"'{t}'"


def tokens(items, n: int = 5) -> str:
    """The first ``n`` tokens, quoted, comma-joined, with '…' when there are more."""
    items = [x for x in (items or []) if isinstance(x, str)]
    return ", ".join(token(x) for x in items[:n]) + (" …" if len(items) > n else "")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``; ``many`` where the plural is not word + s."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
