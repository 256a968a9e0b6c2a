"""Tiny random models of every supported family, built from configs, with a small byte-level BPE tokenizer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

VOCAB = 320
_COMMON = dict(vocab_size=VOCAB, num_hidden_layers=2, num_attention_heads=4, hidden_size=32, max_position_embeddings=128)
_MOE = dict(num_experts=4, num_experts_per_tok=2)

# model_type -> (config kwargs, expected parameter count: guards against misspelt keys building a bigger model)
FAMILY_CONFIGS: dict[str, tuple[dict, int]] = {
    "gpt2": (dict(vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=32, n_positions=128), 39808),
    "llama": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2), 39072),
    "mistral": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2, sliding_window=None), 39072),
    "qwen2": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2), 39200),
    "qwen3": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2, head_dim=8), 39104),
    "olmo2": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2), 39168),
    "gemma": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2, head_dim=8), 28832),
    "gemma2": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2, head_dim=8), 28960),
    "gemma3_text": (dict(_COMMON, intermediate_size=64, num_key_value_heads=2, head_dim=8), 28992),
    "qwen2_moe": (dict(_COMMON, **_MOE, intermediate_size=64, moe_intermediate_size=16, shared_expert_intermediate_size=16, num_key_value_heads=2), 42592),
    "qwen3_moe": (dict(_COMMON, **_MOE, intermediate_size=64, moe_intermediate_size=16, num_key_value_heads=2, head_dim=8, decoder_sparse_step=1, mlp_only_layers=[]), 39360),
    "olmoe": (dict(_COMMON, **_MOE, intermediate_size=16, num_key_value_heads=4), 41504),
    "mixtral": (dict(_COMMON, intermediate_size=16, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2), 39328),
}
MOE_TYPES = {"qwen2_moe", "qwen3_moe", "olmoe", "mixtral"}

CORPUS = [
    "the cat sat on the mat and the dog ran in the park",
    "hello world, this is a tiny corpus for a tiny tokenizer",
    "models diff: base and fine-tuned language models compared token by token",
    "numbers 0 1 2 3 4 5 6 7 8 9 and punctuation ! ? . , ; :",
]


@lru_cache(maxsize=4)
def make_tokenizer(vocab_size: int = VOCAB):
    """A deterministic byte-level BPE tokenizer (Ġ/Ċ markers) wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>")


def build_model(model_type: str, seed: int = 0):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs, _ = FAMILY_CONFIGS[model_type]
    tok = make_tokenizer()
    config = AutoConfig.for_model(model_type, **kwargs, pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    return model, tok


def save_model(model_type: str, directory: Path, seed: int = 0) -> Path:
    model, tok = build_model(model_type, seed)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
