"""Datasets -> token batches with position masks.

The sources (files, saved datasets, hub datasets) are read by ``core.data.datasource`` (no torch there, so a run can
be fingerprinted and reused without it). Chats are rendered with the tokenizer's chat template when it has one,
else as ``role: content`` lines; the position mask then selects the assistant tokens (and ``positions_before``
positions before each assistant turn).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..model.padding import pad
from ..spine.timing import stage
from .datasource import (  # noqa: F401 (the reading API, re-exported)
    Record,
    Source,
    dataset_name,
    file_fingerprint,
    iter_jsonl,
    parse_source,
    read_records,
    source_fingerprint,
)
from .spans import covering


@dataclass
class Sample:
    index: int  # position in the dataset
    ids: list[int]
    mask: list[bool]  # positions to analyse
    record: Record | None = None


@dataclass
class Dataset:
    name: str
    path: Path | str  # a str for hub specs (hf:...)
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
        hits = covering(offsets, lo, hi)
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
    """Read and tokenize one data source; the fingerprint covers its content, these options and the tokenizer."""
    if max_samples is not None and max_samples < 1:
        raise UserError(f"--max-samples {max_samples}: must be at least 1")
    if max_tokens is not None and max_tokens < 2:
        raise UserError(f"--max-tokens {max_tokens}: must be at least 2")
    source = parse_source(path, flag)
    spec = source.spec if source.kind == "hf" else str(Path(source.spec).expanduser())
    with stage("read and tokenize data"):
        records = read_records(spec, text_field, flag, max_samples)
        samples = tokenize_records(records, tokenizer, max_tokens=max_tokens, positions_before=positions_before)
    if not samples:
        raise UserError(f"{flag} {spec}: every sample tokenizes to nothing")
    chat = any(r.messages is not None for r in records)
    if chat and not any(any(s.mask) for s in samples):
        raise UserError(f"{flag} {spec}: no assistant turns to analyse")
    src_fp = source_fingerprint(spec, text_field, max_samples, max_tokens, positions_before)
    fp = hashlib.sha256((src_fp + json.dumps(getattr(tokenizer, "name_or_path", ""))).encode()).hexdigest()[:16]
    where = spec if source.kind == "hf" else Path(spec)
    return Dataset(name=dataset_name(spec), path=where, samples=samples, fingerprint=fp, chat=chat)


def collate(samples: list[Sample], pad_id: int) -> Batch:
    """Right-padded batch of samples (``core.model.padding.pad``) with their analysed-position masks."""
    ids, attn = pad([s.ids for s in samples], pad_id)
    marks, _ = pad([[int(m) for m in s.mask] for s in samples], 0)
    index = torch.tensor([s.index for s in samples], dtype=torch.long)
    return Batch(ids, attn, marks.bool(), index)


def iter_batches(samples: list[Sample], batch_size: int, pad_id: int, sort_by_length: bool = False) -> Iterator[Batch]:
    """Right-padded batches; ``sort_by_length`` groups similar lengths to reduce padding (order is kept in index)."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    order = sorted(samples, key=lambda s: len(s.ids)) if sort_by_length else samples
    for start in range(0, len(order), batch_size):
        yield collate(order[start : start + batch_size], pad_id)
