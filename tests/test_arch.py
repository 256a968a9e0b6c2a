"""Architecture adapter on a tiny random model of every supported family."""

from __future__ import annotations

import pytest
import torch
from tiny import FAMILY_CONFIGS, MOE_TYPES, build_model

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.model.arch import (
    adapter_for,
    resolve_layer,
    resolve_layers,
    router_logits,
    supported_architectures,
)
from modeldiff_cli.core.model.hooks import capture_layers, capture_modules, patch_layers
from modeldiff_cli.core.model.readout import readout


@pytest.mark.parametrize("model_type", sorted(FAMILY_CONFIGS))
def test_adapter_and_readout_identity(model_type):
    model, tok = build_model(model_type)
    expected_params = FAMILY_CONFIGS[model_type][1]
    assert sum(p.numel() for p in model.parameters()) == expected_params
    adapter = adapter_for(model)
    assert adapter.n_layers == 2
    assert adapter.lm_head is model.get_output_embeddings()
    assert adapter.embed is model.get_input_embeddings()
    ids = torch.tensor([tok("the cat sat on the mat")["input_ids"]])
    with torch.no_grad(), capture_layers(adapter.layers, [0, 1]) as hs:
        logits = model(ids).logits.float()
    assert hs[1].shape == (1, ids.shape[1], FAMILY_CONFIGS[model_type][0].get("hidden_size", 32))
    lens = readout(adapter, hs[1])
    torch.testing.assert_close(lens, logits, rtol=1e-5, atol=1e-5)
    # a readout in chunks of rows gives the same rows
    flat = hs[1].reshape(-1, hs[1].shape[-1])
    chunks = torch.cat([readout(adapter, flat[i:i + 2]) for i in range(0, flat.shape[0], 2)])
    torch.testing.assert_close(chunks, logits.reshape(-1, logits.shape[-1]), rtol=1e-5, atol=1e-5)
    # intermediate layer read out differs from the output (a real lens, not a copy)
    assert not torch.allclose(readout(adapter, hs[0]), logits)
    if model_type in MOE_TYPES:
        assert sorted(adapter.routers) == [0, 1]
        with torch.no_grad(), capture_modules(adapter.routers, transform=router_logits) as routed:
            model(ids)
        assert routed[0][0].shape == (ids.shape[1], 4)
    else:
        assert adapter.routers == {}


def test_patch_changes_output_and_restores():
    model, tok = build_model("llama")
    adapter = adapter_for(model)
    ids = torch.tensor([tok("hello world")["input_ids"]])
    with torch.no_grad():
        before = model(ids).logits
        with patch_layers(adapter.layers, {1: lambda h: torch.zeros_like(h)}):
            patched = model(ids).logits
        after = model(ids).logits
    zero_logits = readout(adapter, torch.zeros(1, ids.shape[1], 32))
    torch.testing.assert_close(patched.float(), zero_logits)
    torch.testing.assert_close(before, after)


def test_unknown_architecture_lists_supported():
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt_neo", vocab_size=64, hidden_size=16, num_layers=2, num_heads=2,
                               attention_types=[[["global"], 2]], max_position_embeddings=32)
    model = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(UserError, match="unsupported architecture 'gpt_neo'.*llama"):
        adapter_for(model)
    assert "gpt2" in supported_architectures()


@pytest.mark.parametrize(
    "selector,n,expected",
    [("0.75", 30, 22), ("1.0", 30, 29), ("0.0", 30, 0), ("12", 30, 12), ("-1", 30, 29), ("-30", 30, 0), (0.5, 3, 1)],
)
def test_resolve_layer(selector, n, expected):
    assert resolve_layer(selector, n) == expected


@pytest.mark.parametrize("selector", ["30", "-31", "1.5", "-0.1", "abc"])
def test_resolve_layer_errors(selector):
    with pytest.raises(UserError, match="--layer"):
        resolve_layer(selector, 30)


def test_resolve_layers():
    assert resolve_layers(None, 4) == [0, 1, 2, 3]
    assert resolve_layers("0,-1", 4) == [0, 3]
    assert resolve_layers("1:3", 4) == [1, 2]
    assert resolve_layers("2:", 4) == [2, 3]
    with pytest.raises(UserError, match="--layers"):
        resolve_layers("7", 4)
