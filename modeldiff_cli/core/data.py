"""Datasets -> token batches with position masks.

Accepted files:
- plain text (``.txt`` or anything not ending in ``.jsonl``/``.json``): one sample per non-empty line;
- JSONL with a text field (``--text-field``, default ``text``);
- chat JSONL: records with ``messages: [{role, content}, ...]``. Rendered with the tokenizer's chat template
  when it has one, else as ``role: content`` lines; the position mask then selects the assistant tokens
  (and ``positions_before`` positions before each assistant turn).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError


@dataclass
class Record:
    """One raw sample: its text, or its chat messages, and the source line for error messages."""

    line: int
    text: str | None = None
    messages: list[dict] | None = None
    fields: dict = field(default_factory=dict)


@dataclass
class Sample:
    index: int  # position in the dataset
    ids: list[int]
    mask: list[bool]  # positions to analyse
    record: Record | None = None


@dataclass
class Dataset:
    name: str
    path: Path
    samples: list[Sample]
    fingerprint: str
    chat: bool = False

    @property
    def n_tokens(self) -> int:
        return sum(len(s.ids) for s in self.samples)

    @property
    def n_positions(self) -> int:
        return sum(sum(s.mask) for s in self.samples)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T] right-padded
    attention_mask: torch.Tensor  # [B, T] 1 = real token
    position_mask: torch.Tensor  # [B, T] bool, positions to analyse (subset of attention_mask)
    sample_index: torch.Tensor  # [B] dataset index of each row

    def to(self, device) -> Batch:
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_mask, self.sample_index)))


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def iter_jsonl(path: str | Path, flag: str = "--data") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-empty line of a JSONL file; a missing file, malformed JSON or a
    non-object line raises UserError naming the flag or ``file:line``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, obj


def read_records(path: str | Path, text_field: str = "text", flag: str = "--data", max_samples: int | None = None) -> list[Record]:
    """Read raw records; missing/empty files, malformed JSON and missing fields raise UserError with file:line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file")
    records: list[Record] = []
    if path.suffix in (".jsonl", ".json"):
        for lineno, obj in iter_jsonl(path, flag):
            if max_samples is not None and len(records) >= max_samples:
                break
            records.append(_record_from(obj, path, lineno, text_field))
    else:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if max_samples is not None and len(records) >= max_samples:
                    break
                if line.strip():
                    records.append(Record(line=lineno, text=line.rstrip("\n")))
    if not records:
        raise UserError(f"{flag} {path}: the file holds no samples")
    return records


def _record_from(obj: dict, path: Path, lineno: int, text_field: str) -> Record:
    if text_field in obj:
        text = obj[text_field]
        if not isinstance(text, str):
            raise UserError(f"{path}:{lineno}: field {text_field!r} is not a string")
        return Record(line=lineno, text=text, fields=obj)
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise UserError(f"{path}:{lineno}: 'messages' must be a list of {{role, content}} objects")
        return Record(line=lineno, messages=msgs, fields=obj)
    keys = ", ".join(sorted(obj)) or "none"
    raise UserError(f"{path}:{lineno}: no field {text_field!r} (fields: {keys}); set --text-field")


def _render_plain(messages: list[dict]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


def _chat_ids(tokenizer, messages: list[dict], positions_before: int) -> tuple[list[int], list[bool]]:
    """Token ids of a chat and a mask of its assistant tokens (plus ``positions_before`` before each turn).

    The chat is rendered to text once; each assistant turn's character span (found by rendering the prefix
    of the conversation) selects the tokens whose offsets overlap it.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))

    def render(msgs, gen_prompt=False) -> str:
        if has_template:
            return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen_prompt)
        return _render_plain(msgs) + ("assistant: " if gen_prompt else "")

    text = render(messages)
    enc = tokenizer(text, add_special_tokens=not has_template, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [False] * len(ids)
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        lo = len(render(messages[:i], gen_prompt=True)) if i else 0
        hi = len(render(messages[: i + 1]))
        hits = [p for p, (a, b) in enumerate(offsets) if b > lo and a < hi and b > a]
        if hits:
            for p in range(max(0, hits[0] - positions_before), hits[-1] + 1):
                mask[p] = True
    return ids, mask


def tokenize_records(
    records: list[Record], tokenizer, *, max_tokens: int | None = None, positions_before: int = 0
) -> list[Sample]:
    samples = []
    for i, rec in enumerate(records):
        if rec.messages is not None:
            ids, mask = _chat_ids(tokenizer, rec.messages, positions_before)
        else:
            ids = tokenizer(rec.text, add_special_tokens=True)["input_ids"]
            mask = [True] * len(ids)
        if max_tokens is not None:
            ids, mask = ids[:max_tokens], mask[:max_tokens]
        if ids:
            samples.append(Sample(index=i, ids=list(ids), mask=mask, record=rec))
    return samples


def load_dataset(
    path: str | Path,
    tokenizer,
    *,
    text_field: str = "text",
    max_samples: int | None = None,
    max_tokens: int | None = None,
    positions_before: int = 0,
    flag: str = "--data",
) -> Dataset:
    """Read and tokenize one data file; the fingerprint covers the file bytes and these options."""
    if max_samples is not None and max_samples < 1:
        raise UserError(f"--max-samples {max_samples}: must be at least 1")
    if max_tokens is not None and max_tokens < 2:
        raise UserError(f"--max-tokens {max_tokens}: must be at least 2")
    path = Path(path).expanduser()
    records = read_records(path, text_field, flag, max_samples)
    samples = tokenize_records(records, tokenizer, max_tokens=max_tokens, positions_before=positions_before)
    if not samples:
        raise UserError(f"{flag} {path}: every sample tokenizes to nothing")
    chat = any(r.messages is not None for r in records)
    if chat and not any(any(s.mask) for s in samples):
        raise UserError(f"{flag} {path}: no assistant turns to analyse")
    opts = json.dumps([text_field, max_samples, max_tokens, positions_before, getattr(tokenizer, "name_or_path", "")])
    fp = hashlib.sha256((file_fingerprint(path) + opts).encode()).hexdigest()[:16]
    return Dataset(name=dataset_name(path), path=path, samples=samples, fingerprint=fp, chat=chat)


def dataset_name(path: Path) -> str:
    stem = Path(path).name
    for suffix in (".jsonl", ".json", ".txt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "data"


def collate(samples: list[Sample], pad_id: int) -> Batch:
    width = max(len(s.ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(samples), width), dtype=torch.long)
    pos = torch.zeros((len(samples), width), dtype=torch.bool)
    for r, s in enumerate(samples):
        n = len(s.ids)
        ids[r, :n] = torch.tensor(s.ids, dtype=torch.long)
        attn[r, :n] = 1
        pos[r, :n] = torch.tensor(s.mask, dtype=torch.bool)
    index = torch.tensor([s.index for s in samples], dtype=torch.long)
    return Batch(ids, attn, pos, index)


def iter_batches(samples: list[Sample], batch_size: int, pad_id: int, sort_by_length: bool = False) -> Iterator[Batch]:
    """Right-padded batches; ``sort_by_length`` groups similar lengths to reduce padding (order is kept in index)."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    order = sorted(samples, key=lambda s: len(s.ids)) if sort_by_length else samples
    for start in range(0, len(order), batch_size):
        yield collate(order[start : start + batch_size], pad_id)
