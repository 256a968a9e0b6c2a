"""The two per-feature bar figures of interpret: the causal effects (feature_effects.png) and the category
scores (feature_categories.png). Legends sit outside the axes (above them), so no bar is ever hidden behind
one, whatever the sign or the length of the last feature's bars."""

from __future__ import annotations

from ...core.spine import artifacts


def legend_above(ax, ncol: int, fontsize: int = 7):
    """A legend just above ``ax``, outside the plotting area (the saved figure's tight box includes it)."""
    return ax.legend(fontsize=fontsize, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=ncol, frameon=False,
                     borderaxespad=0.0, columnspacing=1.0, handlelength=1.2)


def feature_effects(features: list[dict]):
    """Three panels, one row per feature: causal score / removal z / steering z; ablation z; KL closed by steering."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    plt = artifacts.pyplot()
    ids = [f["id"] for f in features]
    fig, axes = plt.subplots(1, 3, figsize=(12, 1.2 + 0.45 * len(ids)), sharey=True)
    pos = list(range(len(ids)))
    bars = [("causal score (rank)", [f["rank_score"] for f in features], "C0"),
            ("removal z (KL(ft||base) drop)", [f["causal"]["z_kl"] for f in features], "C2"),
            ("steering z", [f["steering"]["z"] for f in features], "C3")]
    for k, (label, vals, color) in enumerate(bars):
        axes[0].barh([p + (k - 1) * 0.27 for p in pos], vals, height=0.27, label=label, color=color)
    axes[0].axvline(3, color="k", ls="--", lw=0.8)
    axes[0].axvline(0, color="k", lw=0.6)
    axes[0].set_xlabel("z vs random directions (dashed: 3)\nbelow 0: pushes the models apart")
    legend_above(axes[0], ncol=1)
    axes[1].barh(pos, [f["causal"]["z"] for f in features], color="C7")
    axes[1].axvline(3, color="k", ls="--", lw=0.8)
    axes[1].set_xlabel("ablation z in ft (|dCE| vs random)")
    axes[2].barh(pos, [f["steering"]["kl_drop_fraction"] for f in features], color="C1")
    axes[2].axvline(0, color="k", lw=0.6)
    axes[2].set_xlabel("KL(base||ft) closed by steering")
    axes[2].xaxis.set_major_locator(MaxNLocator(5))
    axes[2].xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes[0].set_yticks(pos)
    axes[0].set_yticklabels(ids)
    axes[0].invert_yaxis()
    return fig


def feature_categories(features: list[dict], cats: list[str]):
    """One group of bars per feature, one bar per category."""
    plt = artifacts.pyplot()
    ids = [f["id"] for f in features]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.35 * len(ids)))
    width = 0.8 / len(cats)
    for ci, c in enumerate(cats):
        vals = [f["categories"].get(c, 0.0) for f in features]
        ax.barh([i + ci * width for i in range(len(ids))], vals, height=width, label=c)
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(ids))])
    ax.set_yticklabels(ids)
    ax.invert_yaxis()
    ax.set_xlabel("category score (projection of the category's mean diff; latents: firing frequency)")
    legend_above(ax, ncol=min(len(cats), 4), fontsize=8)
    return fig
