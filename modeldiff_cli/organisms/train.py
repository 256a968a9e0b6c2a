"""Deterministic tiny-model training: seeded, single-threaded, deterministic kernels, asserted model sizes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def deterministic(seed: int):
    """Seed torch, use deterministic kernels and one thread (results do not depend on the core count)."""
    was_det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_det, warn_only=warn_only)
        torch.set_num_threads(threads)


def make_model(model_type: str, expected_params: int, tokenizer, seed: int, **config):
    """A fresh model from a config; the parameter count is asserted so a misspelt key cannot go unnoticed."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **config)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == expected_params, f"{model_type} organism has {n} parameters, expected {expected_params}"
    return model


def encode(tokenizer, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """BOS + tokens + EOS per text, truncated to `max_len`."""
    eos = tokenizer.eos_token_id
    return [(ids + [eos])[:max_len] for ids in tokenizer(list(texts))["input_ids"]]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask, labels (-100 on padding), right-padded."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def train(model, seqs: Sequence[Sequence[int]], steps: int, batch_size: int, lr: float, seed: int,
          pad_id: int, advance: Callable[[int], None] = lambda n=1: None,
          extra_loss: Callable | None = None) -> list[float]:
    """AdamW with warm-up and cosine decay on random batches drawn by a seeded generator; returns losses.

    `extra_loss(batch_indices, attention_mask)` may add an auxiliary term (the MoE organism's routing loss).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) * 0.9 + 0.1)
    model.train()
    losses, order = [], torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(seqs), generator=gen)])
        idx, order = order[:batch_size].tolist(), order[batch_size:]
        ids, mask, labels = pad_batch([seqs[i] for i in idx], pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits
        lm_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        loss = lm_loss if extra_loss is None else lm_loss + extra_loss(idx, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(lm_loss.item())
        advance(1)
    model.eval()
    return losses


def save(model, tokenizer, directory: Path) -> None:
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
