"""Single-prompt mode: the classic logit-lens picture, each model's top token per position x layer."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ...core.data.tokens import display_tokens, visible
from ...core.spine import artifacts


def prompt_table(tokenizer, ids: list[int], tables: dict[str, torch.Tensor], layers: list[int]) -> dict:
    """JSON-ready table: input tokens, and per model a ``[layers][positions]`` grid of top tokens and probs."""
    out = {"input_tokens": display_tokens(tokenizer, ids), "input_ids": list(ids), "layers": layers}
    for name in ("base", "ft"):
        top = tables[f"{name}_top1_id"]
        words = display_tokens(tokenizer, top.flatten().tolist())
        T = top.shape[1]
        out[name] = {
            "top1_token": [words[i * T : (i + 1) * T] for i in range(len(layers))],
            "top1_id": top.tolist(),
            "top1_prob": tables[f"{name}_top1_prob"].tolist(),
        }
    out["kl_ft_base"] = tables["kl_ft_base"].tolist()
    return out


def write_prompt_table(json_path: Path, png_path: Path, table: dict, labels: tuple[str, str] = ("base", "ft"),
                       readout: str = "logit-lens") -> None:
    artifacts.write_json(json_path, table)
    plot_prompt_table(png_path, table, labels, readout)


def _cell(text: str, width: int = 8) -> str:
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in visible(text))
    if text and not text.strip():
        text = text.replace(" ", "␣")
    return text if len(text) <= width else text[: width - 1] + "…"


def _ink(rgba) -> str:
    """Black text on light cells, white on dark ones (relative luminance of the cell colour, sRGB weights)."""
    r, g, b = rgba[:3]
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"


def plot_prompt_table(path: Path, table: dict, labels: tuple[str, str] = ("base", "ft"),
                      readout: str = "logit-lens") -> Path:
    """Three heatmaps (base, ft: top-1 probability; KL(ft||base)) with the top token written in each cell; the
    suptitle names the pair (``labels``) and the readout (``readout``: logit-lens or patchscope) on the prompt."""
    plt = artifacts.pyplot()
    layers, inputs = table["layers"], table["input_tokens"]
    T, L = len(inputs), len(layers)
    a, b = labels
    na, nb = (f"base ({a})" if a != "base" else "base"), (f"ft ({b})" if b != "ft" else "ft")
    panels = [
        (f"{na}: top-1 token (colour = its probability)", table["base"]["top1_prob"], table["base"]["top1_token"], "Blues"),
        (f"{nb}: top-1 token (colour = its probability)", table["ft"]["top1_prob"], table["ft"]["top1_token"], "Greens"),
        ("KL(ft || base) per cell (text = ft top-1)", table["kl_ft_base"], table["ft"]["top1_token"], "Reds"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.85 * T + 1.5), 3 * (0.32 * L + 1.2) + 0.4),
                             squeeze=False, layout="constrained")
    what = readout.replace("-", " ")
    fig.suptitle(f"{a} vs {b}: the {what} on the prompt (top-1 token per layer and position)", fontsize=11)
    for ax, (title, values, words, cmap) in zip(axes[:, 0], panels, strict=True):
        im = ax.imshow(values, aspect="auto", origin="lower", cmap=cmap, vmin=0)
        for li in range(L):
            for t in range(T):
                ink = _ink(im.cmap(im.norm(values[li][t])))
                ax.text(t, li, _cell(words[li][t]), ha="center", va="center", fontsize=7, color=ink)
        ax.set_yticks(range(L), [str(x) for x in layers])
        ax.set_xticks(range(T), [_cell(s) for s in inputs], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.025)
    axes[-1, 0].set_xlabel("input position (token)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # glyphs missing from the font
        return artifacts.save_figure(path, fig)
