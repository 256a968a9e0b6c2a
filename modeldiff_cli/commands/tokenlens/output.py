"""Per-prompt result records (the JSON format of docs/tokenlens.md) and their headline facts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ...core.data.tokens import display_tokens
from .engine import normalize


@dataclass
class Attribution:
    """One model's attribution of one sequence: ``matrix[i, t]`` = input token ``i`` -> generated token ``t``."""

    ids: list[int]  # all tokens of the sequence (rows)
    prompt_len: int
    matrix: torch.Tensor  # [n, T], NaN where token i is not in the prefix of step t
    inseq_json: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def normalized(self) -> torch.Tensor:
        return normalize(self.matrix)


def _rows(t: torch.Tensor) -> list[list[float | None]]:
    return [[None if v != v else float(v) for v in row] for row in t.tolist()]


def record(attr: Attribution, tokenizer, *, llm_id: str, prompt: str, method: str, generation: dict,
           extra_meta: dict, compare: tuple[str, Attribution] | None = None) -> dict:
    """The per-prompt JSON: metadata + data (tokens decoded for display, raw and normalised matrices).

    With ``compare=(llm_id, attribution)`` (diff mode) ``data`` also holds ``compare`` (that model's matrices) and
    ``diff`` (this model minus the compared one, raw and normalised)."""
    ids = attr.ids
    data = {
        "input_tokens": display_tokens(tokenizer, ids),
        "output_tokens": display_tokens(tokenizer, ids[attr.prompt_len:]),
        "input_token_ids": ids,
        "output_token_ids": ids[attr.prompt_len:],
        "prompt_length": attr.prompt_len,
        "association_matrix": _rows(attr.matrix),
        "normalized_association": _rows(attr.normalized),
    }
    meta = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "llm_id": llm_id,
        "prompt": prompt,
        "attribution_method": method,
        "generation_params": generation,
        **extra_meta,
    }
    if compare is not None:
        other_id, other = compare
        meta["compare_llm_id"] = other_id
        data["compare"] = {"llm_id": other_id, "association_matrix": _rows(other.matrix),
                           "normalized_association": _rows(other.normalized)}
        data["diff"] = {"association_matrix": _rows(attr.matrix - other.matrix),
                        "normalized_association": _rows(attr.normalized - other.normalized)}
    return {"metadata": meta, "data": data}


def summary_line(rec: dict, top: int = 3) -> str:
    """One line per prompt: for the first generated tokens, the input token each relies on most (diff mode: whose
    reliance changed most)."""
    data = rec["data"]
    key = data.get("diff", data)["normalized_association"]
    toks, outs = data["input_tokens"], data["output_tokens"]
    parts = []
    for t, out_tok in enumerate(outs[:top]):
        i = _top_row(key, t)
        parts.append(f"{out_tok!r}<-{toks[i]!r} ({key[i][t]:+.2f})")
    return ", ".join(parts)


def first_step(rec: dict) -> dict:
    """Headline facts of one record: the top attributed input token of the first generated token (normalised
    attribution of --model; in diff mode also the input token whose attribution changed most)."""
    data = rec["data"]
    toks = data["input_tokens"]
    out: dict = {}
    for prefix, view in (("", data), ("diff_", data.get("diff"))):
        if view is None or not data["output_tokens"]:
            continue
        key = view["normalized_association"]
        i = _top_row(key, 0)
        out[f"{prefix}top_input_token"] = toks[i]
        out[f"{prefix}top_input_index"] = i
        out[f"{prefix}top_input_score"] = round(float(key[i][0]), 6)
    return out


def _top_row(key: list[list[float | None]], t: int) -> int:
    return max((abs(row[t]) if row[t] is not None else -1.0, i) for i, row in enumerate(key))[1]
