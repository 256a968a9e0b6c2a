"""Shared figure pieces: integer layer axes and per-layer curves (every command's layer plots use these)."""

from __future__ import annotations

from pathlib import Path

from . import artifacts


def layer_axis(ax, layers: list[int], axis: str = "x") -> None:
    """Integer layer ticks (at most ~24 labelled); ``axis="y"`` for heatmaps whose rows are the layers."""
    step = max(1, len(layers) // 24)
    if axis == "y":
        ax.set_yticks(list(range(len(layers)))[::step])
        ax.set_yticklabels([str(v) for v in layers[::step]])
    else:
        ax.set_xticks(layers[::step])


def layer_curves(path: Path, layers: list[int], series: dict, ylabel: str, title: str,
                 ylim: tuple[float, float] | None = None) -> Path:
    """One line per series over the layers (the first solid with round markers, the others dashed)."""
    plt = artifacts.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (label, values) in enumerate(series.items()):
        style = {"marker": "o"} if i == 0 else {"marker": ".", "ls": "--"}
        ax.plot(layers, list(values), label=label, **style)
    layer_axis(ax, layers)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return artifacts.save_figure(path, fig)
