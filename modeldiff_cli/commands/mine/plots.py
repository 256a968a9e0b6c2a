"""Plots of an ordering (bar chart of top tokens, ordering value vs average logit diff) and of where in the
sequence the top tokens occur. Written through core.artifacts."""

from __future__ import annotations

from pathlib import Path

from ...core.artifacts import pyplot, save_figure
from ...core.tokens import visible as _visible


def visible(text: str) -> str:
    """Whitespace and other control characters made visible (fonts have no glyph for them)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in _visible(text))


def ordering_plots(ordering: dict, folder: Path, stem: str, n_bars: int = 20) -> None:
    plt = pyplot()
    toks = ordering["tokens"]
    top = toks[:n_bars]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(top) + 1)))
    ax.barh([visible(t["token_str"]) or "∅" for t in top][::-1], [t["ordering_value"] for t in top][::-1], color="#4477aa")
    ax.set_xlabel("ordering value")
    ax.set_title(ordering["ordering_id"], fontsize=10)
    save_figure(folder / f"{stem}_bar.png", fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([t["avg_logit_diff"] for t in toks], [t["ordering_value"] for t in toks], s=10, color="#aa3377")
    for t in toks[:8]:
        ax.annotate(visible(t["token_str"]), (t["avg_logit_diff"], t["ordering_value"]), fontsize=7)
    ax.set_xlabel("average logit diff (ft - base)")
    ax.set_ylabel("ordering value")
    save_figure(folder / f"{stem}_scatter.png", fig)


def positional_plot(hist, bin_width: int, labels: list[str], path: Path) -> None:
    """``hist [tokens, bins]``: top-K positive occurrences of each token by sequence-position bin."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [i * bin_width for i in range(hist.shape[1])]
    for row, label in zip(hist.tolist(), labels):
        ax.plot(x, row, marker="o", ms=3, label=visible(label))
    ax.set_xlabel(f"position in sequence (bins of {bin_width} tokens)")
    ax.set_ylabel("top-K positive occurrences")
    ax.legend(fontsize=7, ncol=2)
    save_figure(path, fig)
