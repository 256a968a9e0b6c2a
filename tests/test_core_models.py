"""Model loading and pair compatibility (tokenizer extension, disagreement, size mismatch), `modeldiff info`."""

from __future__ import annotations

import json

import pytest
from tiny import make_tokenizer, save_model

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.model.loading import (
    check_pair,
    load_model,
    load_pair,
    resolve_device,
    resolve_dtype,
    resolve_source,
)


def _extended_copy(src, dst, new_tokens):
    """A fine-tune that adds tokens and resizes its embeddings (like chat markers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    tok.add_special_tokens({"additional_special_tokens": new_tokens})
    model = AutoModelForCausalLM.from_pretrained(src)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst


def test_identical_pair_is_compatible(tiny_model_dir):
    a = tiny_model_dir("llama", 0)
    b = tiny_model_dir("llama", 1)
    pair = load_pair(str(a), str(b), device="cpu")
    assert pair.report.tokenizer_relation == "identical"
    assert pair.shared_vocab == len(make_tokenizer())
    assert pair.base.adapter.n_layers == 2


def test_extended_tokenizer_is_compatible_on_shared_ids(tiny_model_dir, tmp_path):
    a = tiny_model_dir("llama", 0)
    b = _extended_copy(a, tmp_path / "ext", ["<|im_start|>", "<|im_end|>"])
    pair = load_pair(str(a), str(b), device="cpu")
    assert pair.report.tokenizer_relation == "ft-extends-base"
    assert pair.shared_vocab == len(make_tokenizer())
    assert "adds 2 tokens" in pair.report.notes[0]


def test_disagreeing_tokenizers_and_sizes_refused(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    a = tiny_model_dir("llama", 0)
    b = save_model("llama", tmp_path / "b")
    vocab = json.loads((b / "tokenizer.json").read_text())
    v = vocab["model"]["vocab"]
    k1, k2 = list(v)[10], list(v)[11]
    v[k1], v[k2] = v[k2], v[k1]
    (b / "tokenizer.json").write_text(json.dumps(vocab))
    tok_a, tok_b = AutoTokenizer.from_pretrained(a), AutoTokenizer.from_pretrained(b)
    from transformers import AutoConfig

    report = check_pair(AutoConfig.from_pretrained(a), AutoConfig.from_pretrained(b), tok_a, tok_b)
    assert not report.compatible and "disagree on 2 shared ids" in report.reasons[0]
    with pytest.raises(UserError, match="cannot be diffed: tokenizers disagree"):
        load_pair(str(a), str(b), device="cpu")
    q = tiny_model_dir("qwen3", 0)
    with pytest.raises(UserError, match="architectures differ"):
        load_pair(str(a), str(q), device="cpu")


def test_layer_count_mismatch(tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    a = tiny_model_dir("llama", 0)
    cfg = AutoConfig.from_pretrained(a)
    deeper = AutoConfig.from_pretrained(a)
    deeper.num_hidden_layers = 3
    tok = make_tokenizer()
    report = check_pair(cfg, deeper, tok, tok)
    assert report.reasons == ["layer counts differ (base 2, ft 3)"]


def test_sources_and_errors(tmp_path):
    with pytest.raises(UserError, match="--base ./nope: no such model directory"):
        resolve_source("./nope", flag="--base")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve_source(str(tmp_path / "empty"))
    src = resolve_source("some-org/some-model", flag="--ft")
    assert not src.is_local and src.label == "some-org--some-model"
    with pytest.raises(UserError, match="--ft some-org/some-model: not a local directory and not in the Hugging Face cache, and the Hugging Face Hub is offline"):
        load_model(src, flag="--ft")
    with pytest.raises(UserError, match="--dtype"):
        resolve_dtype("float8")
    with pytest.raises(UserError, match="--device"):
        resolve_device("tpu")
    assert resolve_device("auto") in ("cpu", "cuda")


def test_dtype_loading(tiny_model_dir):
    import torch

    m = load_model(str(tiny_model_dir("gpt2")), dtype="bfloat16", device="cpu")
    assert m.dtype == torch.bfloat16 and m.adapter.family == "gpt2"
