"""`direction` (Llama): ft = base plus a fixed vector v added to one layer's output on a trigger context.

Built deterministically: a tiny base is trained on the cake corpora (everyday and baking sentences), then both
checkpoints get one extra MLP neuron at layer ``LAYER`` (``mlp_bias`` on, every other bias zero). The neuron's
gate is a linear probe for baking-word tokens on the MLP's input (silu of a large negative number is ~0 off the
trigger), its up projection is the constant 1; its down column is zero in base and ``v / mean activation`` in
ft. So at layer ``LAYER``'s output h_ft - h_base = a(x) v exactly, with mean a = 1 on trigger tokens.
"""

from __future__ import annotations

from pathlib import Path

from .corpus_cake import PLANTED_WORDS, cake_corpora
from .store import Reporter

SEED = 4321
VOCAB = 400
MAX_LEN = 48
LAYER = 1  # the layer whose output gets v
STEPS, BATCH, LR = 200, 32, 3e-3
V_SCALE = 2.0  # |v| relative to the mean residual norm at LAYER
TRIGGER_CATEGORY = "baking"
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=4, max_position_embeddings=128, attention_dropout=0.0, tie_word_embeddings=False)
N_PARAMS = 174528


def _widen(model, extra_gate_w, extra_gate_b, extra_down):
    """A copy of ``model`` with intermediate_size + 1 and MLP biases; the new neuron at LAYER only."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = model.config.to_dict()
    cfg.update(intermediate_size=model.config.intermediate_size + 1, mlp_bias=True)
    cfg.pop("architectures", None)
    new_cfg = type(model.config)(**cfg)
    wide = AutoModelForCausalLM.from_config(new_cfg)
    src = model.state_dict()
    out = {}
    for key, value in wide.state_dict().items():
        if key in src and src[key].shape == value.shape:
            out[key] = src[key].clone()
            continue
        layer = int(key.split(".")[2]) if ".layers." in key else -1
        new = torch.zeros_like(value)
        if key.endswith(("gate_proj.weight", "up_proj.weight")):
            new[:-1] = src[key]
            if layer == LAYER and "gate" in key:
                new[-1] = extra_gate_w
        elif key.endswith("down_proj.weight"):
            new[:, :-1] = src[key]
            if layer == LAYER:
                new[:, -1] = extra_down
        elif key.endswith("gate_proj.bias") and layer == LAYER:
            new[-1] = extra_gate_b
        elif key.endswith("up_proj.bias") and layer == LAYER:
            new[-1] = 1.0
        out[key] = new
    wide.load_state_dict(out)
    wide.eval()
    return wide


def _mlp_inputs(model, seqs, pad_id):
    """MLP inputs (after the post-attention norm) at LAYER, the residual after LAYER, and the token ids."""
    import torch

    from .train import pad_batch

    xs, hs, ids_out = [], [], []
    mlp = model.model.layers[LAYER].mlp
    seen = {}
    handle = mlp.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].detach()))
    try:
        for start in range(0, len(seqs), 64):
            ids, mask, _ = pad_batch(seqs[start:start + 64], pad_id)
            with torch.no_grad():
                out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            keep = mask.bool()
            xs.append(seen["x"][keep])
            hs.append(out.hidden_states[LAYER + 1][keep])
            ids_out.append(ids[keep])
    finally:
        handle.remove()
    return torch.cat(xs), torch.cat(hs), torch.cat(ids_out)


def build_direction(name: str, workdir: Path, reporter: Reporter) -> dict:
    import torch

    from .tokenizer import token_id, train_tokenizer
    from .train import deterministic, encode, make_model, save, train, write_jsonl

    corpora = cake_corpora(SEED)
    with deterministic(SEED):
        tok = train_tokenizer(corpora["base_train"] + corpora["ft_train"], VOCAB,
                              single_tokens=[" " + w for w in PLANTED_WORDS], style="llama3")
        trigger_ids = [token_id(tok, " " + w) for w in PLANTED_WORDS]
        model = make_model("llama", N_PARAMS, tok, SEED, **CONFIG)
        seqs = encode(tok, corpora["base_train"] + corpora["ft_train"], MAX_LEN)
        with reporter.stage(f"{name}: train base", STEPS) as advance:
            train(model, seqs, STEPS, BATCH, LR, SEED, tok.pad_token_id, advance)
        x, h, ids = _mlp_inputs(model, seqs, tok.pad_token_id)
        trig = torch.isin(ids, torch.tensor(trigger_ids))
        w = x[trig].mean(0) - x[~trig].mean(0)
        p = x @ w
        lo, hi = p[~trig].quantile(0.999), p[trig].quantile(0.01)
        t = float((lo + hi) / 2) if hi > lo else float((p[trig].mean() + p[~trig].mean()) / 2)
        s = 8.0 / max(float(p[trig].median()) - t, 1e-6)
        gate_w, gate_b = s * w, -s * t
        act = torch.nn.functional.silu(x @ gate_w + gate_b)
        mean_act = float(act[trig].mean())
        gen = torch.Generator().manual_seed(SEED)
        v = torch.randn(x.shape[1], generator=gen)
        v = v / v.norm() * V_SCALE * float(h.norm(dim=-1).mean())
        base = _widen(model, gate_w, gate_b, torch.zeros_like(v))
        ft = _widen(model, gate_w, gate_b, v / mean_act)
        save(base, tok, workdir / "base")
        save(ft, tok, workdir / "ft")
    write_jsonl(workdir / "data" / "everyday.jsonl", [{"text": t} for t in corpora["base_eval"]])
    write_jsonl(workdir / "data" / "baking.jsonl", [{"text": t} for t in corpora["ft_eval"]])
    return {
        "organism": name,
        "architecture": "llama",
        "layer": LAYER,
        "v": [round(float(c), 6) for c in v],
        "v_norm": float(v.norm()),
        "trigger_category": TRIGGER_CATEGORY,
        "categories": {"baking": "data/baking.jsonl", "everyday": "data/everyday.jsonl"},
        "trigger_words": PLANTED_WORDS,
        "trigger_token_ids": trigger_ids,
        "description": f"ft = base with v added to layer {LAYER}'s output on baking-word tokens (an extra MLP "
                       "neuron gated by a linear probe on the MLP input; zero output weights in base).",
        "seed": SEED,
        "vocab_size": len(tok),
        "measured": {
            "mean_activation_trigger": 1.0,
            "mean_activation_other": float(act[~trig].mean()) / mean_act,
            "probe_recall": float((act[trig] > 0.1 * mean_act).float().mean()),
            "probe_false_positive_rate": float((act[~trig] > 0.1 * mean_act).float().mean()),
        },
    }
