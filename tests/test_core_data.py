"""Data loading: text, JSONL, chat JSONL, limits, padding, and every bad-input path."""

from __future__ import annotations

import json

import pytest
from tiny import make_tokenizer

from modeldiff_cli.core.data import iter_batches, load_dataset
from modeldiff_cli.core.errors import UserError


@pytest.fixture()
def tok():
    return make_tokenizer()


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plain_text_one_sample_per_line(tmp_path, tok):
    ds = load_dataset(write(tmp_path / "a.txt", ["the cat sat", "", "hello world"]), tok)
    assert ds.name == "a" and len(ds.samples) == 2
    assert ds.samples[0].ids == tok("the cat sat")["input_ids"]
    assert all(all(s.mask) for s in ds.samples)


def test_jsonl_text_field_limits_and_fingerprint(tmp_path, tok):
    path = write(tmp_path / "d.jsonl", [json.dumps({"body": f"the cat sat on the mat {i}"}) for i in range(5)])
    ds = load_dataset(path, tok, text_field="body", max_samples=3, max_tokens=4)
    assert len(ds.samples) == 3 and all(len(s.ids) == 4 for s in ds.samples)
    again = load_dataset(path, tok, text_field="body", max_samples=3, max_tokens=4)
    other = load_dataset(path, tok, text_field="body", max_samples=2, max_tokens=4)
    assert ds.fingerprint == again.fingerprint != other.fingerprint


def test_chat_mask_selects_assistant_tokens(tmp_path, tok):
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "the cat sat"}]
    ds = load_dataset(write(tmp_path / "c.jsonl", [json.dumps({"messages": msgs})]), tok)
    s = ds.samples[0]
    assert ds.chat
    selected = tok.decode([i for i, m in zip(s.ids, s.mask, strict=True) if m])
    assert selected.strip() == "the cat sat"
    before = load_dataset(tmp_path / "c.jsonl", tok, positions_before=2).samples[0]
    assert sum(before.mask) == sum(s.mask) + 2


def test_batches_are_right_padded_with_masks(tmp_path, tok):
    ds = load_dataset(write(tmp_path / "a.txt", ["the cat sat on the mat", "hi"]), tok)
    (batch,) = list(iter_batches(ds.samples, batch_size=8, pad_id=tok.pad_token_id))
    n0, n1 = len(ds.samples[0].ids), len(ds.samples[1].ids)
    assert batch.input_ids.shape == (2, max(n0, n1))
    assert batch.attention_mask.sum(1).tolist() == [n0, n1]
    assert (batch.input_ids[1, n1:] == tok.pad_token_id).all()
    assert batch.position_mask.sum().item() == n0 + n1


@pytest.mark.parametrize(
    "content,kwargs,message",
    [
        (None, {}, "no such file"),
        ("", {}, "holds no samples"),
        ('{"text": "ok"}\n{oops\n', {}, r"d.jsonl:2: malformed JSON"),
        ('{"body": "x"}\n', {}, r"d.jsonl:1: no field 'text' \(fields: body\); set --text-field"),
        ('{"text": 3}\n', {}, "not a string"),
        ('[1, 2]\n', {}, "JSON object per line"),
        ('{"messages": [{"role": "user"}]}\n', {}, "messages"),
        ('{"text": "ok"}\n', {"max_samples": 0}, "--max-samples"),
        ('{"text": "ok"}\n', {"max_tokens": 1}, "--max-tokens"),
    ],
)
def test_bad_input(tmp_path, tok, content, kwargs, message):
    path = tmp_path / "d.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_dataset(path, tok, **kwargs)


def test_batch_size_must_be_positive(tok):
    with pytest.raises(UserError, match="--batch-size"):
        list(iter_batches([], 0, 0))
