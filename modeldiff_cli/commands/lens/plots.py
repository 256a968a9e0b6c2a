"""Line plots of the per-layer lens metrics."""

from __future__ import annotations

from pathlib import Path

from ...core import artifacts


def plot_kl(path: Path, layers: list[int], means: dict) -> Path:
    plt = artifacts.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(layers, means["kl_ft_base"].numpy(), marker="o", label="KL(ft || base)")
    ax.plot(layers, means["kl_base_final"].numpy(), marker=".", ls="--", label="base: KL(final || layer)")
    ax.plot(layers, means["kl_ft_final"].numpy(), marker=".", ls="--", label="ft: KL(final || layer)")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean KL (nats)")
    ax.set_title("Lens divergence by layer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return artifacts.save_figure(path, fig)


def plot_agreement(path: Path, layers: list[int], means: dict) -> Path:
    plt = artifacts.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(layers, means["top1_agreement"].numpy(), marker="o", color="tab:green")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel("top-1 agreement (ft vs base)")
    ax.set_title("Top-1 agreement of the two models' lens by layer")
    ax.grid(alpha=0.3)
    return artifacts.save_figure(path, fig)
