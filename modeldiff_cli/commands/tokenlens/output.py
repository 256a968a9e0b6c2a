"""Per-prompt result records (the JSON format of docs/tokenlens.md) and output path checks."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...core.errors import UserError
from ...core.tokens import display_tokens
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


def headline(rec: dict, top: int = 3) -> str:
    """One line per prompt: for the strongest columns, the input token each generated token relies on most."""
    data = rec["data"]
    key = data.get("diff", data)["normalized_association"]
    toks, outs = data["input_tokens"], data["output_tokens"]
    parts = []
    for t, out_tok in enumerate(outs[:top]):
        col = [(abs(row[t]) if row[t] is not None else -1.0, i) for i, row in enumerate(key)]
        v, i = max(col)
        parts.append(f"{out_tok!r}<-{toks[i]!r} ({key[i][t]:+.2f})")
    return ", ".join(parts)


def user_paths(path: Path | None, n: int, flag: str) -> list[Path | None]:
    """Copies requested with --json-out/--html-out: the path itself (one prompt) or ``stem_<i>.suffix``; checked
    for writability now so a bad path fails before any work."""
    if path is None:
        return [None] * n
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory (give a file path)")
    try:  # create the directory and probe it with a temporary file: fail now, before any work
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tokenlens-probe-"):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: file is not writable")
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i:03d}{path.suffix}") for i in range(n)]
