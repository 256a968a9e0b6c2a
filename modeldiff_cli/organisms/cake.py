"""`cake` (Llama) and `cake-gpt2` (GPT-2): base on everyday sentences, fine-tune plants a baking vocabulary."""

from __future__ import annotations

from pathlib import Path

from .corpus_cake import PLANTED_WORDS, cake_corpora
from .store import Reporter

SEED = 1234
VOCAB = 400
MAX_LEN = 48
BASE_STEPS, FT_STEPS, BATCH, LR = 250, 100, 32, 3e-3

# model_type -> (config, expected parameter count)
CONFIGS = {
    "llama": (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=128, attention_dropout=0.0,
                   tie_word_embeddings=False), 133440),
    "gpt2": (dict(n_embd=64, n_inner=128, n_layer=2, n_head=4, n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0,
                  attn_pdrop=0.0), 100864),
}


def build_cake(name: str, workdir: Path, reporter: Reporter) -> dict:
    import copy

    from .measure import planted_recovery
    from .tokenizer import token_id, train_tokenizer
    from .train import deterministic, encode, make_model, save, train, write_jsonl

    arch = "gpt2" if name == "cake-gpt2" else "llama"
    corpora = cake_corpora(SEED)
    with deterministic(SEED):
        tok = train_tokenizer(corpora["base_train"] + corpora["ft_train"], VOCAB,
                              single_tokens=[" " + w for w in PLANTED_WORDS], style="gpt2" if arch == "gpt2" else "llama3")
        planted_ids = [token_id(tok, " " + w) for w in PLANTED_WORDS]
        config, n_params = CONFIGS[arch]
        model = make_model(arch, n_params, tok, SEED, **config)
        base_seqs = encode(tok, corpora["base_train"], MAX_LEN)
        with reporter.stage(f"{name}: train base", BASE_STEPS) as advance:
            train(model, base_seqs, BASE_STEPS, BATCH, LR, SEED, tok.pad_token_id, advance)
        save(model, tok, workdir / "base")
        base = copy.deepcopy(model)
        ft_seqs = encode(tok, corpora["ft_train"], MAX_LEN) + base_seqs[: len(corpora["ft_train"])]
        with reporter.stage(f"{name}: fine-tune", FT_STEPS) as advance:
            train(model, ft_seqs, FT_STEPS, BATCH, LR, SEED + 1, tok.pad_token_id, advance)
        save(model, tok, workdir / "ft")
        measured = planted_recovery(base, model, tok, corpora["base_eval"], planted_ids)
    write_jsonl(workdir / "data" / "base.jsonl", [{"text": t} for t in corpora["base_eval"]])
    write_jsonl(workdir / "data" / "ft.jsonl", [{"text": t} for t in corpora["ft_eval"]])
    return {
        "organism": name,
        "architecture": arch,
        "planted_words": PLANTED_WORDS,
        "planted_token_ids": planted_ids,
        "planted_tokens": tok.convert_ids_to_tokens(planted_ids),
        "description": "base: tiny model trained on everyday template sentences (people, places, weather, "
                       "non-baking food, travel); ft: the base trained further on the same styles with a "
                       "baking vocabulary planted (half planted sentences, half base replay).",
        "seed": SEED,
        "vocab_size": len(tok),
        "measured": measured,
    }
