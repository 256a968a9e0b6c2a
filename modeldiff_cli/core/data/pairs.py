"""Two conditions as aligned items (nll, routing): token ids of A and B and the positions scored in each.

A scored position ``p`` is the index of a *target* token: it is predicted from the hidden state at ``p - 1``,
so ``1 <= p < len(ids)``. The i-th position of A is aligned with the i-th position of B.

Sources:
- two models on one data file (A = base, B = ft, the same ids): every token but the first, or the assistant
  tokens of chat records, or only the completion when every record holds ``prompt`` and ``completion``
  (field names configurable);
- one model on a pairs JSONL file: ``{"id", "a_ids", "b_ids", "a_positions", "b_positions"}`` (names
  configurable; ``a_ids`` / ``b_ids`` may also be strings, tokenized with the model's tokenizer; without
  positions every token but the first is scored and A and B must have the same length).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .datasets import load_dataset
from .datasource import iter_jsonl, read_records
from .spans import completion_tokens


@dataclass
class Item:
    id: str
    a_ids: list[int]
    b_ids: list[int]
    a_positions: list[int]
    b_positions: list[int]


@dataclass
class PairFields:
    id: str = "id"
    a: str = "a_ids"
    b: str = "b_ids"
    a_positions: str = "a_positions"
    b_positions: str = "b_positions"


@dataclass
class ConditionItems:
    items: list[Item]


def items_from_data(
    path: str | Path, tokenizer, *, text_field: str, prompt_field: str, completion_field: str, id_field: str, max_samples, max_tokens
) -> ConditionItems:
    """Two models on one file: the same ids in A and B; targets from the data's position mask, or only the
    completion tokens when every record holds ``prompt_field`` and ``completion_field``."""
    try:
        records = read_records(path, prompt_field, "--data", max_samples)
    except UserError:
        records = None  # not a prompt/completion file: read below as plain data (which reports any error)
    if records and all(completion_field in r.fields for r in records):
        items = [_completion_item(r, tokenizer, prompt_field, completion_field, id_field, path, max_tokens) for r in records]
    else:
        data = load_dataset(path, tokenizer, text_field=text_field, max_samples=max_samples, max_tokens=max_tokens)
        items = []
        for s in data.samples:
            pos = [p for p in range(1, len(s.ids)) if s.mask[p]]
            items.append(Item(str(s.index), s.ids, s.ids, pos, pos))
    items = [it for it in items if it.a_positions]
    if not items:
        raise UserError(f"--data {path}: no sample has a token to score (each needs at least two tokens)")
    return ConditionItems(items)


def _completion_item(rec, tokenizer, prompt_field, completion_field, id_field, path, max_tokens) -> Item:
    prompt, completion = rec.fields.get(prompt_field), rec.fields.get(completion_field)
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise UserError(f"{path}:{rec.line}: fields {prompt_field!r} and {completion_field!r} must both be strings")
    ids, span = completion_tokens(tokenizer, prompt, completion)
    ids = ids[:max_tokens] if max_tokens else ids
    pos = [p for p in span if 1 <= p < len(ids)]  # a target is predicted from the token before it
    return Item(str(rec.fields.get(id_field, rec.line)), ids, ids, pos, pos)


def items_from_pairs(path: str | Path, tokenizer, fields: PairFields, vocab: int, max_samples=None) -> ConditionItems:
    """Parse and validate a pairs JSONL file; any malformed record -> UserError naming file:line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--pairs {path}: no such file")
    items: list[Item] = []
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path, "--pairs"):
        if max_samples is not None and len(items) >= max_samples:
            break
        where = f"{path}:{lineno}"
        item = parse_pair(obj, where, tokenizer, fields, vocab, default_id=str(lineno))
        if item.id in seen:
            raise UserError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UserError(f"--pairs {path}: the file holds no records")
    return ConditionItems(items)


def parse_pair(obj: dict, where: str, tokenizer, f: PairFields, vocab: int, default_id: str) -> Item:
    """One pairs record -> Item, checking ids, positions (range, alignment) with one-line errors."""
    a = _ids(obj, f.a, where, tokenizer, vocab)
    b = _ids(obj, f.b, where, tokenizer, vocab)
    has_a, has_b = f.a_positions in obj, f.b_positions in obj
    if has_a != has_b:
        raise UserError(f"{where}: give both {f.a_positions!r} and {f.b_positions!r} or neither")
    if has_a:
        pa = _positions(obj, f.a_positions, len(a), where)
        pb = _positions(obj, f.b_positions, len(b), where)
        if len(pa) != len(pb):
            raise UserError(f"{where}: positions misaligned: {f.a_positions!r} has {len(pa)} entries, {f.b_positions!r} has {len(pb)}")
    else:
        if len(a) != len(b):
            raise UserError(f"{where}: no positions given and the sequences differ in length ({len(a)} vs {len(b)}); add {f.a_positions!r}/{f.b_positions!r}")
        pa = pb = list(range(1, len(a)))
    if not pa:
        raise UserError(f"{where}: no position to score")
    return Item(str(obj.get(f.id, default_id)), a, b, pa, pb)


def _ids(obj: dict, key: str, where: str, tokenizer, vocab: int) -> list[int]:
    if key not in obj:
        raise UserError(f"{where}: no field {key!r} (fields: {', '.join(sorted(obj)) or 'none'}); see --a-field/--b-field")
    val = obj[key]
    if isinstance(val, str):
        val = tokenizer(val, add_special_tokens=True)["input_ids"]
    if not isinstance(val, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in val):
        raise UserError(f"{where}: field {key!r} must be a list of token ids or a string")
    if len(val) < 2:
        raise UserError(f"{where}: field {key!r} needs at least two tokens")
    bad = [x for x in val if not 0 <= x < vocab]
    if bad:
        raise UserError(f"{where}: field {key!r} holds token id {bad[0]} outside the vocabulary [0, {vocab})")
    return val


def _positions(obj: dict, key: str, length: int, where: str) -> list[int]:
    val = obj[key]
    if not isinstance(val, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in val):
        raise UserError(f"{where}: field {key!r} must be a list of integer positions")
    bad = [p for p in val if not 1 <= p < length]
    if bad:
        raise UserError(f"{where}: {key!r} position {bad[0]} is out of range: targets must lie in [1, {length - 1}] (sequence of {length} tokens)")
    return val
