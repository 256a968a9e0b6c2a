"""Per-layer curves of `nll`: NLL A vs B, the delta, the logit-lens score and JS (all / last views)."""

from __future__ import annotations

from ...core.spine import artifacts
from ...core.spine.plots import layer_axis
from .artifacts import CURVES_PLOT, DELTA_PLOT, JS_PLOT, LENS_PLOT


def _panel_pair(plt, title: str, layers: list[int] | None = None, data: str = ""):
    # constrained layout: each panel's axis labels (the logit-lens figure's twin axis too) get their own room
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True, layout="constrained")
    fig.suptitle(f"{title} on {data}" if data else title)
    for ax, view in zip(axes, ("all scored positions", "last scored position"), strict=True):
        ax.set_title(view, fontsize=9)
        ax.set_xlabel("layer")
        if layers:
            layer_axis(ax, layers)
        ax.grid(alpha=0.3)
    return fig, axes


def plot_curves(run, rows: list[dict], labels: tuple[str, str], js_mode: str, data: str = "") -> None:
    """The four figures; ``data`` (the dataset names) completes the titles ("A vs B on <data>")."""
    plt = artifacts.pyplot()
    layers = [r["layer"] for r in rows]
    a, b = labels

    fig, axes = _panel_pair(plt, f"NLL of the target by layer: {a} vs {b}", layers, data)
    for ax, v in zip(axes, ("all", "last"), strict=True):
        ax.plot(layers, [r[f"nll_a_{v}"] for r in rows], marker="o", label=a)
        ax.plot(layers, [r[f"nll_b_{v}"] for r in rows], marker="s", label=b)
        ax.set_ylabel("NLL (nats)")
        ax.legend(fontsize=8)
    artifacts.save_figure(run.file(CURVES_PLOT.path()), fig)

    fig, axes = _panel_pair(plt, f"NLL({b}) - NLL({a}) by layer", layers, data)
    for ax, v in zip(axes, ("all", "last"), strict=True):
        ax.axhline(0, color="grey", lw=0.8)
        ax.plot(layers, [r[f"delta_{v}"] for r in rows], marker="o", color="C2")
        ax.set_ylabel("delta NLL (nats)")
    artifacts.save_figure(run.file(DELTA_PLOT.path()), fig)

    fig, axes = _panel_pair(plt, f"Logit-lens log p(target) (solid), top-1 rate (dashed): {a} vs {b}", layers, data)
    for ax, v in zip(axes, ("all", "last"), strict=True):
        ax.plot(layers, [r[f"logp_a_{v}"] for r in rows], marker="o", label=f"{a} log p(target)")
        ax.plot(layers, [r[f"logp_b_{v}"] for r in rows], marker="s", label=f"{b} log p(target)")
        ax.set_ylabel("log p(target)")
        twin = ax.twinx()
        twin.plot(layers, [r[f"top1_a_{v}"] for r in rows], ls="--", marker="^", ms=4, mfc="none", color="C0",
                  alpha=0.7, label=f"{a} top-1 rate")
        twin.plot(layers, [r[f"top1_b_{v}"] for r in rows], ls="--", marker="v", ms=4, mfc="none", color="C1",
                  alpha=0.7, label=f"{b} top-1 rate")
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel("top-1 rate")
    # one legend for both panels (same four lines in each), solid and dashed, below the panels
    handles = [h for axis in (ax, twin) for h in axis.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    artifacts.save_figure(run.file(LENS_PLOT.path()), fig)

    if js_mode != "none":
        fig, axes = _panel_pair(plt, f"JS({a}, {b}) by layer (nats)", layers, data)
        for ax, v in zip(axes, ("all", "last"), strict=True):
            vals = [r[f"js_{v}"] for r in rows]
            if all(x is not None for x in vals):
                ax.plot(layers, vals, marker="o", color="C3")
            else:
                ax.text(0.5, 0.5, f"not computed (--js-mode {js_mode})", ha="center", transform=ax.transAxes)
            ax.set_ylabel("JS (nats)")
        artifacts.save_figure(run.file(JS_PLOT.path()), fig)
