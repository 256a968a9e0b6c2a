"""Heatmaps (layer x expert) and per-layer curves, with integer layer ticks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.spine import artifacts
from ...core.spine.plots import layer_axis, layer_curves


def heatmap(path: Path, matrix: np.ndarray, layers: list[int], title: str, diverging: bool = False) -> Path:
    plt = artifacts.pyplot()
    E = matrix.shape[1]
    fig, ax = plt.subplots(figsize=(min(16, 3 + 0.12 * E), min(12, 2 + 0.25 * len(layers))))
    if diverging:
        lim = float(np.abs(matrix).max()) or 1.0
        im = ax.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    else:
        im = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax)
    layer_axis(ax, layers, "y")
    ax.set_xlabel("expert")
    ax.set_ylabel("layer")
    ax.set_title(title)
    return artifacts.save_figure(path, fig)


def curve(path: Path, layers: list[int], series: dict[str, np.ndarray], ylabel: str, title: str) -> Path:
    return layer_curves(path, layers, series, ylabel, title)


# what each sweep metric is, for titles and axis labels (the CSV keeps the column names)
SWEEP_METRICS = {
    "gain_undone": ("gain undone", "(NLL ft masked - NLL ft) / (NLL base - NLL ft)"),
    "gap_closed": ("gap closed", "1 - KL(ft masked || base) / KL(ft || base)"),
    "delta_nll_a": ("delta NLL, side A", "NLL masked - NLL, side A (nats)"),
    "delta_nll_b": ("delta NLL, side B", "NLL masked - NLL, side B (nats)"),
    "specificity": ("specificity", "delta NLL B - delta NLL A (nats)"),
}


def sweep_curve(path: Path, rows: list[dict], metric: str, context: str = "") -> Path:
    """The metric against the number of masked experts: top experts per mode, random mean +/- std as a band.
    Both curves start at the unmasked baseline (the ``n_masked`` 0 row; std 0 there)."""
    from matplotlib.ticker import MaxNLocator

    plt = artifacts.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    modes = sorted({r["mode"] for r in rows if r["mode"] != "none"})
    zero = [r for r in rows if r["n_masked"] == 0]
    base = float(zero[0][metric]) if zero else 0.0  # no baseline row: every metric is 0 with nothing masked
    for i, mode in enumerate(modes):
        color = f"C{i}"
        top = sorted((r for r in rows if r["mode"] == mode and r["control"] == "top"), key=lambda r: r["n_masked"])
        rnd = sorted((r for r in rows if r["mode"] == mode and r["control"] == "random_mean"), key=lambda r: r["n_masked"])
        xs = [0] + [r["n_masked"] for r in top]
        ax.plot(xs, [base] + [r[metric] for r in top], marker="o", color=color, label=f"top ({mode})")
        if rnd:
            xr = [0] + [r["n_masked"] for r in rnd]
            mean = np.array([base] + [r[metric] for r in rnd], dtype=float)
            std = np.array([0.0] + [r[f"{metric}_std"] for r in rnd], dtype=float)
            ax.plot(xr, mean, ls="--", marker=".", color=color, label=f"random ({mode}, mean +/- std)")
            ax.fill_between(xr, mean - std, mean + std, color=color, alpha=0.2)
    name, formula = SWEEP_METRICS.get(metric, (metric.replace("_", " "), metric.replace("_", " ")))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("experts masked (top N cells of the ordering)")
    ax.set_ylabel(name)
    ax.set_title(f"mask sweep: {name} = {formula}" + (f"\n{context}" if context else ""), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return artifacts.save_figure(path, fig)
