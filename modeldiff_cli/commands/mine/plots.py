"""Plots of an ordering (bar chart of top tokens, ordering value vs average logit diff) and of where in the
sequence the top tokens occur. Written through core.spine.artifacts."""

from __future__ import annotations

from pathlib import Path

from ...core.data.tokens import visible as _visible
from ...core.spine.artifacts import pyplot, save_figure


def visible(text: str) -> str:
    """Whitespace and other control characters made visible (fonts have no glyph for them)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in _visible(text))


def shown(text: str) -> str:
    """A token as a plot label: ``visible``, with leading/trailing spaces as ``␣`` (a drawn label loses them,
    so " cake" and "cake" would look the same); the empty token as ``∅``."""
    v = visible(text)
    core = v.strip(" ")
    if not core:
        return "␣" * len(v) if v else "∅"
    return "␣" * (len(v) - len(v.lstrip(" "))) + core + "␣" * (len(v) - len(v.rstrip(" ")))


# where a scatter label may go, tried in this order: (dx, dy) in points and its alignment
_OFFSETS = (((3, 3), "left", "bottom"), ((-3, 3), "right", "bottom"), ((3, -3), "left", "top"),
            ((-3, -3), "right", "top"), ((3, 10), "left", "bottom"), ((-3, -10), "right", "top"))


def ordering_plots(ordering: dict, bar: Path, scatter: Path, n_bars: int = 20, context: str = "",
                   n_labels: int = 6) -> None:
    """Bar chart of the top tokens (to ``bar``) and a scatter (to ``scatter``) of the average logit diff (y)
    against the ordering value (x, as in the report's scatter; only the top ``n_labels`` tokens annotated, offset from their points). ``context`` ("base vs ft on <dataset>") goes in the titles."""
    plt = pyplot()
    toks = ordering["tokens"]
    top = toks[:n_bars]
    suffix = f"\n{context}" if context else ""
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(top) + 1)))
    # bars at numeric positions, labelled after: two tokens drawn alike would share a categorical bar
    ax.barh(range(len(top)), [t["ordering_value"] for t in top][::-1], color="C0")
    ax.set_yticks(range(len(top)), [shown(t["token_str"]) for t in top][::-1])
    ax.set_xlabel("ordering value")
    ax.set_title(f"{ordering['ordering_id']}: top {len(top)} tokens (␣ = space){suffix}", fontsize=10)
    save_figure(bar, fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    # x: the ordering value, y: the average logit diff, as the report's scatter draws them
    ax.scatter([t["ordering_value"] for t in toks], [t["avg_logit_diff"] for t in toks], s=10, color="C1")
    ax.margins(x=0.12, y=0.1)  # room for the labels of the extreme points
    ax.autoscale_view()  # final limits before measuring the labels
    # labels in rank order (the ordering's own order); each tries the offsets in turn and takes the first where it
    # overlaps no label already placed and stays inside the axes; if none fits, labelling stops there, so the
    # labelled tokens are always exactly the top ``labelled`` ones (never a lower-ranked one without a higher one)
    renderer, placed = fig.canvas.get_renderer(), []
    frame = ax.get_window_extent(renderer)
    for t in toks[:n_labels]:
        for offset, ha, va in _OFFSETS:
            note = ax.annotate(shown(t["token_str"]), (t["ordering_value"], t["avg_logit_diff"]), fontsize=7,
                               xytext=offset, textcoords="offset points", ha=ha, va=va)
            box = note.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            note.remove()
        else:
            break
    labelled = len(placed)
    ax.set_xlabel("ordering value")
    ax.set_ylabel("average logit diff (ft - base)")
    ax.set_title(f"{ordering['ordering_id']}: logit diff vs ordering value (top {labelled} labelled){suffix}", fontsize=10)
    save_figure(scatter, fig)


_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "v", "D", "x")


def positional_plot(hist, bin_width: int, labels: list[str], path: Path, context: str = "", max_lines: int = 6) -> None:
    """``hist [tokens, bins]``: top-K positive occurrences of each token by sequence-position bin (the first
    ``max_lines`` tokens; each line its own colour, line style and marker)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [i * bin_width for i in range(hist.shape[1])]
    rows = hist.tolist()[:max_lines]
    for i, (row, label) in enumerate(zip(rows, labels, strict=False)):
        ax.plot(x, row, color=f"C{i % 10}", ls=_STYLES[i % len(_STYLES)], marker=_MARKERS[i % len(_MARKERS)],
                ms=4, mfc="none", label=shown(label))
    ax.set_xlabel(f"position in sequence (bins of {bin_width} tokens)")
    ax.set_ylabel("top-K positive occurrences")
    ax.set_title(f"where the top {len(rows)} promoted tokens occur" + (f"\n{context}" if context else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(path, fig)
