"""core.model.routers: router capture on every supported MoE family, probability detection, the top-k cross-check,
and masking that really acts on the model's computation."""

from __future__ import annotations

import pytest
import torch

from modeldiff_cli.core.errors import UserError
from modeldiff_cli.core.model.forward import forward
from modeldiff_cli.core.model.routers import (
    RouterSpec,
    capture_routing,
    is_probability,
    mask_experts,
    moe_families,
    read_router,
    router_specs,
)

_C = dict(vocab_size=320, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, max_position_embeddings=128,
          num_key_value_heads=2)
_DS = dict(_C, num_key_value_heads=4, intermediate_size=64, moe_intermediate_size=16, n_routed_experts=8,
           num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=16,
           qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, rope_scaling=None,
           rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
# model_type -> (config, parameter count (guards against a misspelt key building another model), MoE layers, experts)
FAMILIES = {
    "qwen2_moe": (dict(_C, num_experts=4, num_experts_per_tok=2, intermediate_size=64, moe_intermediate_size=16,
                       shared_expert_intermediate_size=16, decoder_sparse_step=1, mlp_only_layers=[1]), 51936, [0, 2], 4),
    "qwen3_moe": (dict(_C, num_experts=4, num_experts_per_tok=2, intermediate_size=64, moe_intermediate_size=16,
                       head_dim=8, decoder_sparse_step=1, mlp_only_layers=[1]), 48656, [0, 2], 4),
    "olmoe": (dict(_C, num_experts=4, num_experts_per_tok=2, intermediate_size=16), 48880, [0, 1, 2], 4),
    "mixtral": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2), 48736, [0, 1, 2], 4),
    "deepseek_v3": (dict(_DS, n_group=2, topk_group=1), 68160, [1, 2], 8),
    "deepseek_v2": (dict(_DS, n_group=2, topk_group=1, topk_method="group_limited_greedy"), 68160, [1, 2], 8),
    "gpt_oss": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2, head_dim=8, sliding_window=8,
                     layer_types=["sliding_attention", "full_attention", "sliding_attention"]), 49816, [0, 1, 2], 4),
    "qwen3_next": (dict(_C, intermediate_size=64, moe_intermediate_size=16, shared_expert_intermediate_size=16,
                        num_experts=4, num_experts_per_tok=2, head_dim=8, linear_num_value_heads=2,
                        linear_num_key_heads=2, linear_key_head_dim=8, linear_value_head_dim=8, decoder_sparse_step=1,
                        mlp_only_layers=[1], layer_types=["linear_attention", "full_attention", "linear_attention"]),
                   52424, [0, 2], 4),
    "phimoe": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2), 48960, [0, 1, 2], 4),
    "granitemoe": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2), 48736, [0, 1, 2], 4),
    "granitemoeshared": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2,
                              shared_intermediate_size=16), 53344, [0, 1, 2], 4),
    "glm4_moe": (dict(_C, intermediate_size=64, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=2,
                      n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1, head_dim=8), 64224, [1, 2], 8),
    "minimax": (dict(_C, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2, head_dim=8,
                     layer_types=["full_attention"] * 3), 48736, [0, 1, 2], 4),
    "flex_olmo": (dict(_C, intermediate_size=16, num_experts=4, num_experts_per_tok=2, pad_token_id=0,
                       bos_token_id=1, eos_token_id=2), 48880, [0, 1, 2], 4),
    "ernie4_5_moe": (dict(_C, intermediate_size=64, moe_intermediate_size=16, moe_num_experts=4, moe_k=2,
                          moe_layer_start_index=1, head_dim=8), 44520, [1, 2], 4),
}

_BUILT: dict[str, object] = {}


def build(model_type: str):
    if model_type not in _BUILT:
        from transformers import AutoConfig, AutoModelForCausalLM

        kwargs, _, _, _ = FAMILIES[model_type]
        config = AutoConfig.for_model(model_type, **kwargs)
        torch.manual_seed(0)
        _BUILT[model_type] = AutoModelForCausalLM.from_config(config, experts_implementation="eager").eval()
    return _BUILT[model_type]


def _ids(n_tokens: int = 12, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, 300, (batch, n_tokens), generator=g)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_capture_and_mask(model_type):
    """The router hook sees every MoE layer (dense layers have none), the model's own picks pass the
    cross-check, and a mask changes the output while no masked expert keeps a slot."""
    _, n_params, moe_layers, n_experts = FAMILIES[model_type]
    model = build(model_type)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model_type in moe_families()
    specs = router_specs(model)
    assert sorted(specs) == moe_layers
    assert all(s.n_experts == n_experts and s.top_k == 2 for s in specs.values())
    ids = _ids()
    cap = forward(model, ids, None, routers=True, logits="all")
    routing = capture_routing(cap.routers, specs, ids.numel())
    assert sorted(routing) == moe_layers
    for r in routing.values():
        assert r.own_indices
        assert torch.allclose(r.probs.sum(-1), torch.ones(ids.numel()), atol=1e-4)
        assert torch.allclose(r.weights.sum(-1), torch.ones(ids.numel()), atol=1e-5)
    # mask each MoE layer's most used expert
    masks = {layer: [int(r.slots().sum(0).argmax())] for layer, r in routing.items()}
    outs = {}
    for mode in ("keep-topk", "replace-topk", "deactivate"):
        with mask_experts(specs, masks, mode) as report:
            masked = forward(model, ids, None, routers=True, logits="all")
        assert report.violations == 0 and report.masked_slots > 0
        assert sorted(report.calls) == moe_layers
        for layer in moe_layers:
            raw = masked.routers[layer][0]
            weights = raw[1].reshape(-1, raw[1].shape[-1])
            reached = raw[2].reshape(-1, raw[2].shape[-1])[weights != 0]
            assert masks[layer][0] not in reached.tolist(), f"{mode}: layer {layer} masked expert still used"
        assert not torch.allclose(masked.logits, cap.logits), f"{mode}: the mask did not change the output"
        outs[mode] = masked.logits
    assert not torch.allclose(outs["keep-topk"], outs["replace-topk"])
    # hooks removed on exit: the model is back to its own routing
    again = forward(model, ids, None, logits="all")
    assert torch.allclose(again.logits, cap.logits)


def test_model_without_routers_is_a_one_line_error():
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("llama", vocab_size=64, num_hidden_layers=1, num_attention_heads=2, hidden_size=16,
                                  intermediate_size=32, num_key_value_heads=2)
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(UserError) as err:
        router_specs(model)
    text = str(err.value)
    assert "llama" in text and "qwen3_moe" in text and "mixtral" in text and "\n" not in text


class _Gate(torch.nn.Module):
    top_k, num_experts = 2, 4


def _spec(layer: int = 3) -> RouterSpec:
    return RouterSpec(layer=layer, module=_Gate(), n_experts=4, top_k=2)


def test_probability_rows_detected_and_not_softmaxed_twice():
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert is_probability(probs)
    assert not is_probability(torch.tensor([[2.0, -1.0, 0.0, 0.5]]))
    r = read_router(probs, _spec())
    assert torch.allclose(r.probs, probs)
    assert r.indices[0].tolist() == [0, 1]
    assert torch.allclose(r.weights[0], torch.tensor([0.7 / 0.9, 0.2 / 0.9]))


def test_tensor_and_tuple_outputs_captured():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    from_tensor = read_router(logits, _spec())
    assert not from_tensor.own_indices and from_tensor.indices.tolist() == [[0, 2]]
    assert torch.allclose(from_tensor.probs, logits.softmax(-1))
    own = torch.tensor([[2, 0]])
    from_tuple = read_router((logits, torch.tensor([[0.3, 0.7]]), own), _spec())
    assert from_tuple.own_indices and from_tuple.indices.tolist() == [[2, 0]]
    p = logits.softmax(-1)[0]
    assert torch.allclose(from_tuple.weights[0], torch.stack([p[2], p[0]]) / (p[0] + p[2]))


def test_cross_check_mismatch_names_the_layer():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    with pytest.raises(UserError, match="layer 3"):
        read_router((logits, torch.tensor([[0.5, 0.5]]), torch.tensor([[1, 3]])), _spec(3))


def test_mask_leaving_fewer_than_k_experts_is_an_error():
    specs = {0: _spec(0)}
    with pytest.raises(UserError, match="fewer than the 2"), mask_experts(specs, {0: [0, 1, 2]}, "keep-topk"):
        pass
    with pytest.raises(UserError, match="out of range"), mask_experts(specs, {0: [9]}, "keep-topk"):
        pass


def test_light_mask_modes_match_core():
    from modeldiff_cli.commands.routing.command import MASK_MODES as light
    from modeldiff_cli.core.model.routers import MASK_MODES

    assert light == MASK_MODES
