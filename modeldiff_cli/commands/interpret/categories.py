"""Prompt categories: alignmt's ``{"category": ["prompt", ...]}`` file and/or ``--data`` files (one category each).

One category is a run of its own (``single``): the pair's difference on that data, with no contrast between
categories, so what needs one (the category-specific directions, the token relevance) is left out; see
docs/interpret.md, "One data source". Torch-free reading and validation (run in ``__post_init__``: bad input
exits 2 before any model loads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError

BUILTIN = Path(__file__).parent / "categories_cake.json"


def read_categories(path: str | Path, flag: str = "--categories") -> dict[str, list[str]]:
    """The categories file, checked: a JSON object of non-empty lists of non-empty strings."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{flag} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{flag} {path}: cannot read ({err})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{flag} {path}: malformed JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{flag} {path}: expected a JSON object {{\"category\": [\"prompt\", ...]}}")
    for name, prompts in obj.items():
        if not isinstance(prompts, list):
            raise UserError(f"{flag} {path}: category {name!r} is not a list of strings")
        if not prompts:
            raise UserError(f"{flag} {path}: category {name!r} is empty")
        if not all(isinstance(p, str) and p.strip() for p in prompts):
            raise UserError(f"{flag} {path}: category {name!r} holds a non-string or empty prompt")
    return obj


@dataclass
class Category:
    name: str
    samples: list = field(default_factory=list)  # core.data.datasets.Sample
    texts: list[str] = field(default_factory=list)


def load_categories(cmd, tokenizer) -> list[Category]:
    """Every category tokenized (whole prompts, teacher-forced, truncated to --max-tokens)."""
    from ...core.data.datasets import Record, tokenize_records

    out: list[Category] = []
    if cmd.categories is not None:
        for name, prompts in read_categories(cmd.categories).items():
            if cmd.data.max_samples is not None:
                prompts = prompts[: cmd.data.max_samples]
            records = [Record(line=i + 1, text=p) for i, p in enumerate(prompts)]
            samples = tokenize_records(records, tokenizer, max_tokens=cmd.data.max_tokens)
            if not samples:
                raise UserError(f"--categories {cmd.categories}: category {name!r} tokenizes to nothing")
            out.append(Category(name, samples, list(prompts)))
    for ds in cmd.data.load(tokenizer) if cmd.data.data else []:
        texts = [s.record.text if s.record and s.record.text is not None else "" for s in ds.samples]
        out.append(Category(ds.name, ds.samples, texts))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise UserError(f"categories: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
    if not out:
        raise UserError("--prompts/--data: give a categories file or data files")
    return out


def single(categories) -> bool:
    """One category: the run reads the difference on one data source, with nothing to contrast it against."""
    return len(categories) == 1
