"""Line plots of the per-layer lens metrics (through core.spine.plots: integer layer ticks)."""

from __future__ import annotations

from pathlib import Path

from ...core.spine.plots import layer_curves


def plot_kl(path: Path, layers: list[int], means: dict, context: str = "base vs ft") -> Path:
    series = {"KL(ft || base)": means["kl_ft_base"].numpy(),
              "base: KL(final || layer)": means["kl_base_final"].numpy(),
              "ft: KL(final || layer)": means["kl_ft_final"].numpy()}
    return layer_curves(path, layers, series, "mean KL (nats)", f"Lens divergence by layer: {context}")


def plot_agreement(path: Path, layers: list[int], means: dict, context: str = "base vs ft") -> Path:
    return layer_curves(path, layers, {"top-1 agreement": means["top1_agreement"].numpy()},
                        "top-1 agreement (ft vs base)", f"Top-1 lens agreement by layer: {context}",
                        ylim=(-0.02, 1.02))
