"""core.model.patchscope: identity on the model's own states, chunking / batching invariance, cached prefix."""

from __future__ import annotations

import pytest
import torch

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.model.hooks import capture_layers
from modeldiff_cli.core.model.loading import load_model
from modeldiff_cli.core.model.patchscope import DEFAULT_PROMPT, patchscope_logits, split_prompt

PROMPT = "the cat -> the cat\nhello -> hello\n?"


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def loaded(request, tiny_model_dir):
    return load_model(str(tiny_model_dir(request.param)), device="cpu")


def _full_prompt_state(loaded, prompt, layer):
    ident = split_prompt(loaded.tokenizer, prompt)
    ids = torch.tensor([ident.prefix_ids + [ident.placeholder_id]])
    with torch.no_grad(), capture_layers(loaded.adapter.layers, [layer]) as store:
        logits = loaded.model(input_ids=ids).logits[0, -1]
    return store[layer][0, -1], logits


@pytest.mark.parametrize("layer", [0, 1])
def test_own_state_reproduces_model_logits(loaded, layer):
    """Patching the state the model itself computes at the placeholder changes nothing: logits equal."""
    h, want = _full_prompt_state(loaded, PROMPT, layer)
    got = patchscope_logits(loaded, h[None], prompt=PROMPT, target_layer=layer)
    assert got.shape == (1, want.shape[-1]) and got.dtype == torch.float32
    torch.testing.assert_close(got[0], want, atol=1e-4, rtol=1e-4)


def test_batched_chunked_equal_one_by_one(loaded):
    torch.manual_seed(0)
    d = loaded.config.hidden_size if hasattr(loaded.config, "hidden_size") else loaded.config.n_embd
    states = torch.randn(7, d)
    whole = patchscope_logits(loaded, states, target_layer=-1, chunk_size=256)
    chunked = patchscope_logits(loaded, states, target_layer=-1, chunk_size=3)
    single = torch.cat([patchscope_logits(loaded, s[None], target_layer=-1) for s in states])
    torch.testing.assert_close(whole, chunked, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(whole, single, atol=1e-4, rtol=1e-4)
    # the patched state matters: different states read out differently
    assert not torch.allclose(whole[0], whole[1])


def test_source_layer_is_default_target(loaded):
    h, want = _full_prompt_state(loaded, DEFAULT_PROMPT, 1)
    got = patchscope_logits(loaded, h[None], source_layer=1)
    torch.testing.assert_close(got[0], want, atol=1e-4, rtol=1e-4)


def test_bad_prompt_and_layer(loaded):
    with pytest.raises(UserError, match="placeholder"):
        patchscope_logits(loaded, torch.zeros(1, 32), prompt="no marker here")
    with pytest.raises(UserError, match="out of range"):
        patchscope_logits(loaded, torch.zeros(1, 32), target_layer=9)
