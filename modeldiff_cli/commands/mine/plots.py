"""Plots of an ordering (bar chart of top tokens, ordering value vs average logit diff) and of where in the
sequence the top tokens occur. Written through core.artifacts."""

from __future__ import annotations

from pathlib import Path

from ...core.artifacts import pyplot, save_figure
from ...core.tokens import visible as _visible


def visible(text: str) -> str:
    """Whitespace and other control characters made visible (fonts have no glyph for them)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in _visible(text))


def ordering_plots(ordering: dict, folder: Path, stem: str, n_bars: int = 20, context: str = "",
                   n_labels: int = 6) -> None:
    """Bar chart of the top tokens and a scatter of ordering value vs logit diff (only the top ``n_labels``
    tokens annotated, offset from their points). ``context`` ("base vs ft on <dataset>") goes in the titles."""
    plt = pyplot()
    toks = ordering["tokens"]
    top = toks[:n_bars]
    suffix = f"\n{context}" if context else ""
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(top) + 1)))
    ax.barh([visible(t["token_str"]) or "∅" for t in top][::-1], [t["ordering_value"] for t in top][::-1], color="C0")
    ax.set_xlabel("ordering value")
    ax.set_title(f"{ordering['ordering_id']}: top {len(top)} tokens{suffix}", fontsize=10)
    save_figure(folder / f"{stem}_bar.png", fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([t["avg_logit_diff"] for t in toks], [t["ordering_value"] for t in toks], s=10, color="C1")
    ax.margins(x=0.12, y=0.1)  # room for the labels of the extreme points
    ax.autoscale_view()  # final limits before measuring the labels
    ranked = sorted(toks, key=lambda t: t["ordering_value"], reverse=True)[:n_labels]
    renderer, placed = fig.canvas.get_renderer(), []
    for t in ranked:
        note = ax.annotate(visible(t["token_str"]) or "∅", (t["avg_logit_diff"], t["ordering_value"]), fontsize=7,
                           xytext=(3, 3), textcoords="offset points")
        box = note.get_window_extent(renderer)
        if any(box.overlaps(b) for b in placed):  # a higher-ranked label already sits there: leave this one out
            note.remove()
        else:
            placed.append(box)
    labelled = len(placed)
    ax.set_xlabel("average logit diff (ft - base)")
    ax.set_ylabel("ordering value")
    ax.set_title(f"{ordering['ordering_id']} vs logit diff (top {labelled} labelled){suffix}", fontsize=10)
    save_figure(folder / f"{stem}_scatter.png", fig)


def positional_plot(hist, bin_width: int, labels: list[str], path: Path, context: str = "") -> None:
    """``hist [tokens, bins]``: top-K positive occurrences of each token by sequence-position bin."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [i * bin_width for i in range(hist.shape[1])]
    for row, label in zip(hist.tolist(), labels):
        ax.plot(x, row, marker="o", ms=3, label=visible(label))
    ax.set_xlabel(f"position in sequence (bins of {bin_width} tokens)")
    ax.set_ylabel("top-K positive occurrences")
    ax.set_title("where the top promoted tokens occur" + (f"\n{context}" if context else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    save_figure(path, fig)
