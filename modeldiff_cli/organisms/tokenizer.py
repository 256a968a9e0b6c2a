"""Deterministic byte-level BPE tokenizers (Ġ = space, Ċ = newline, as in GPT-2 / Llama 3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
# Llama 3's pre-tokenizer split: digits go in chunks of up to 3 WITHOUT the leading space (" 5" -> "Ġ", "5"),
# words keep it (" cake" -> "Ġcake"). The "gpt2" style attaches the space to numbers too (" 5" -> "Ġ5").
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(texts: Iterable[str], vocab_size: int, single_tokens: Sequence[str] = (),
                    added_tokens: Sequence[str] = (), style: str = "llama3"):
    """Train a byte-level BPE on `texts` and wrap it as a PreTrainedTokenizerFast that prepends BOS.

    `style` picks the pre-tokenizer split: "llama3" (Llama 3 / Qwen) or "gpt2".
    `single_tokens` (e.g. " cake", " 11") must each encode to exactly one BPE token: they are added to the
    training text often enough to be merged, and checked. `added_tokens` (e.g. "<GN>") become added tokens,
    never split, after the BPE vocabulary. Training is single-threaded and deterministic.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        assert style == "gpt2", style
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    corpus = list(texts) + list(single_tokens) * 200
    tok.train_from_iterator(corpus, trainer)
    if added_tokens:
        tok.add_tokens(list(added_tokens))
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    for text in list(single_tokens) + list(added_tokens):
        ids = fast(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{text!r} must be one token, got {fast.convert_ids_to_tokens(ids)}"
    return fast


def token_id(tokenizer, text: str) -> int:
    """The id of `text`, which must encode to exactly one token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{text!r} is not one token: {tokenizer.convert_ids_to_tokens(ids)}"
    return ids[0]
