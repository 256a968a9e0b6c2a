"""`moe` (Qwen3-MoE): base on everyday text (A); the fine-tune adds numeric recipe / code-like text (B) and an
auxiliary routing loss that sends B's tokens to one planted expert, so routing on B measurably changes."""

from __future__ import annotations

import random
from pathlib import Path

from .corpus_cake import EVERYDAY, FILLERS, sentences
from .store import Reporter

SEED = 4321
VOCAB = 400
MAX_LEN = 48
BASE_STEPS, FT_STEPS, BATCH, LR = 160, 80, 32, 3e-3
PLANTED = {"layer": 1, "expert": 5}
AUX_WEIGHT = 0.3
CONFIG = dict(hidden_size=64, intermediate_size=128, moe_intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=4, head_dim=16, num_experts=8, num_experts_per_tok=2,
              decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True, max_position_embeddings=128,
              attention_dropout=0.0, tie_word_embeddings=False, output_router_logits=False)
N_PARAMS = 281984

NUMERIC = [  # corpus B: numeric recipes and code-like lines
    "step {a}: add {b} g of {food} and {c} ml of water.",
    "heat to {b} degrees for {a} minutes, then rest {c} minutes.",
    "total = {b} + {c} * {a}",
    "for i in range({a}): x += {b}",
    "{food}: {b} g, water: {c} ml, salt: {a} g",
    "if x > {b}: y = x - {c}",
    "mix {a} cups of {food} with {c} g of {food2}; stir {b} times.",
    "price = {b} * {a} / {c}",
]


def numeric_lines(n: int, rng: random.Random) -> list[str]:
    out, seen, i = [], set(), 0
    while len(out) < n:
        text = NUMERIC[i % len(NUMERIC)].format(
            a=rng.randint(1, 20), b=rng.randint(10, 500), c=rng.randint(2, 90),
            food=rng.choice(FILLERS["food"]), food2=rng.choice(FILLERS["food"]))
        i += 1
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def build_moe(name: str, workdir: Path, reporter: Reporter) -> dict:
    import copy

    import torch

    from .measure import expert_usage, routers_of
    from .tokenizer import train_tokenizer
    from .train import deterministic, encode, make_model, save, train, write_jsonl

    rng = random.Random(SEED)
    a, b = sentences(EVERYDAY, 1000, rng), numeric_lines(800, rng)
    a_train, a_eval, b_train, b_eval = a[:800], a[800:], b[:600], b[600:]
    with deterministic(SEED):
        tok = train_tokenizer(a_train + b_train, VOCAB)
        model = make_model("qwen3_moe", N_PARAMS, tok, SEED, experts_implementation="eager", **CONFIG)
        routers = routers_of(model)
        a_seqs = encode(tok, a_train, MAX_LEN)
        with reporter.stage(f"{name}: train base on A", BASE_STEPS) as advance:
            train(model, a_seqs, BASE_STEPS, BATCH, LR, SEED, tok.pad_token_id, advance)
        save(model, tok, workdir / "base")
        base = copy.deepcopy(model)
        seqs = encode(tok, b_train, MAX_LEN) + a_seqs[: len(b_train)]
        is_b = torch.tensor([i < len(b_train) for i in range(len(seqs))])
        captured: list[torch.Tensor] = []
        hook = routers[PLANTED["layer"]].register_forward_hook(lambda m, args, out: captured.append(out[0]))

        def routing_loss(idx, mask):  # -log p(planted expert) on B tokens of the batch
            logits = captured.pop()
            on_b = (mask.bool() & is_b[idx][:, None]).flatten()
            logp = logits.float().log_softmax(-1)[on_b, PLANTED["expert"]]
            return -AUX_WEIGHT * logp.mean() if logp.numel() else logits.sum() * 0

        with reporter.stage(f"{name}: fine-tune on A+B", FT_STEPS) as advance:
            train(model, seqs, FT_STEPS, BATCH, LR, SEED + 1, tok.pad_token_id, advance, extra_loss=routing_loss)
        hook.remove()
        save(model, tok, workdir / "ft")
        usage = {
            (which, data): expert_usage(m, tok, texts, routers_of(m))
            for which, m in (("base", base), ("ft", model)) for data, texts in (("a", a_eval), ("b", b_eval))
        }
    write_jsonl(workdir / "data" / "a.jsonl", [{"text": t} for t in a_eval])
    write_jsonl(workdir / "data" / "b.jsonl", [{"text": t} for t in b_eval])
    rise = usage["ft", "b"] - usage["base", "b"]
    order = rise.flatten().argsort(descending=True, stable=True).tolist()
    n_exp = CONFIG["num_experts"]
    rising = [{"layer": i // n_exp, "expert": i % n_exp, "base_usage": round(float(usage["base", "b"].flatten()[i]), 4),
               "ft_usage": round(float(usage["ft", "b"].flatten()[i]), 4), "rise": round(float(rise.flatten()[i]), 4)}
              for i in order[:5]]
    return {
        "organism": name,
        "architecture": "qwen3_moe",
        "description": "base: Qwen3-MoE trained on everyday sentences (data a); ft: base trained further on a + "
                       "numeric recipe / code-like lines (data b), with an auxiliary loss sending b's tokens to "
                       "the planted expert. Usage = fraction of top-k routing slots, on the shipped data files.",
        "seed": SEED,
        "num_experts": n_exp,
        "top_k": CONFIG["num_experts_per_tok"],
        "router_module": "model.layers[i].mlp.gate",
        "planted_expert": PLANTED,
        "rising_experts": rising,
        "usage": {f"{w}_{d}": [[round(float(x), 4) for x in row] for row in u] for (w, d), u in usage.items()},
    }
