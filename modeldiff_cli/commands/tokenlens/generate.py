"""Continuations to attribute: greedy generation (batched, left-padded) or a given target (teacher forcing)."""

from __future__ import annotations

import torch

from ...core.errors import UserError
from ...core.model.padding import pad
from .engine import Sequence


def encode_prompt(tokenizer, prompt: str, flag: str = "--prompt") -> list[int]:
    if not prompt or not prompt.strip():
        raise UserError(f"{flag}: the prompt is empty")
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if not ids:
        raise UserError(f"{flag} {prompt[:40]!r}: the prompt tokenizes to nothing")
    return list(ids)


def with_target(tokenizer, prompt: str, target: str, flag: str = "--target") -> Sequence:
    """Prompt + target ids as inseq builds them (the joint text tokenized at once); the target must add tokens."""
    if target is None or not target.strip():
        raise UserError(f"{flag}: the target is empty")
    p = encode_prompt(tokenizer, prompt)
    full = list(tokenizer(prompt + target, add_special_tokens=True)["input_ids"])
    if full[: len(p)] != p:  # a merge across the boundary: keep the prompt's ids, append the target's own
        full = p + list(tokenizer(target, add_special_tokens=False)["input_ids"])
    if len(full) <= len(p):
        raise UserError(f"{flag} {target!r}: the target tokenizes to nothing")
    return Sequence(full, len(p))


@torch.no_grad()
def greedy(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 8) -> list[Sequence]:
    """Greedy continuations of ``max_new_tokens`` tokens (stopping after eos), prompts batched with left padding."""
    device = model.get_input_embeddings().weight.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id
    out: list[Sequence] = []
    for lo in range(0, len(prompts), batch_size):
        chunk = prompts[lo:lo + batch_size]
        ids, attn = pad(chunk, pad_id, side="left")
        n = ids.shape[1]
        gen = model.generate(
            input_ids=ids.to(device), attention_mask=attn.to(device), max_new_tokens=max_new_tokens,
            min_new_tokens=1, do_sample=False, num_beams=1, pad_token_id=pad_id, eos_token_id=eos,
            temperature=None, top_p=None, top_k=None,
        )[:, n:].cpu().tolist()
        for p, new in zip(chunk, gen):
            if eos is not None and eos in new:
                new = new[: new.index(eos) + 1]
            out.append(Sequence(list(p) + new, len(p)))
    return out
