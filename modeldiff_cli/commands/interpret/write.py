"""Everything `interpret` writes (through core.spine.artifacts; names and columns from ``artifacts.py``), and the
headline."""

from __future__ import annotations

import torch

from ...core.data.tokens import display_tokens
from ...core.spine import artifacts
from ...core.spine.command import Result
from ...core.spine.plots import layer_axis
from . import crosscoder as xc
from .artifacts import (
    CATEGORIES_PLOT,
    COSINE_COLUMNS,
    COSINES,
    CROSSCODER,
    CROSSCODER_JSON,
    DECODER_PLOT,
    EFFECTS_PLOT,
    FEATURE_KEYS,
    FEATURES,
    HEATMAP,
    LAYER_COLUMNS,
    LAYER_DIFF,
    LOSS_PLOT,
    RELEVANCE,
    STATS,
    VECTORS,
)
from .feature_plots import feature_categories, feature_effects
from .report import write_reports


def public(f: dict) -> dict:
    out = {k: f[k] for k in FEATURE_KEYS if k in f}
    out["vector_norm"] = float(f["vector"].norm())
    if "merged" in f:
        out["merged"] = [{k: v for k, v in m.items() if k not in ("vector", "category_index", "layer")}
                         | {"vector_norm": float(m["vector"].norm())} for m in f["merged"]]
    return out


def layer_rows(stats) -> list[dict]:
    rel = stats.relative_norms()
    rows = []
    for li, layer in enumerate(stats.layers):
        for ci, cat in enumerate(stats.categories):
            n = stats.norms.mean[li, ci, :, 0]
            rows.append({"layer": layer, "category": cat, "positions": int(stats.diff.count[li, ci]),
                         "diff_norm": float(stats.diff.mean[li, ci].norm()), "relative_norm": float(rel[li, ci]),
                         "base_norm": float(n[0]), "ft_norm": float(n[1]), "mean_abs_diff_norm": float(n[2])})
    return rows


def write_outputs(run, cmd, pair, categories, stats, rel, features, coders, lstats, samples) -> None:
    tok = pair.tokenizer
    artifacts.write_json(run.file(FEATURES.path()), {"features": [public(f) for f in features]})
    d = stats.diff.mean.shape[-1]
    artifacts.write_npz(run.file(VECTORS.path()), ids=[f["id"] for f in features],
                        layers=[f["layer"] for f in features],
                        vectors=(torch.stack([f["vector"].float() for f in features]) if features
                                 else torch.zeros(0, d)).numpy())
    artifacts.write_csv(run.file(LAYER_DIFF.path()), layer_rows(stats), list(LAYER_COLUMNS))
    cos = stats.category_cosines()
    cats = stats.categories
    artifacts.write_csv(run.file(COSINES.path()), [
        {"layer": layer, "a": a, "b": b, "cosine": float(cos[li, i, j])}
        for li, layer in enumerate(stats.layers) for i, a in enumerate(cats) for j, b in enumerate(cats) if i < j],
        list(COSINE_COLUMNS))
    artifacts.write_npz(run.file(STATS.path()), layers=stats.layers, categories=cats,
                        mean_diff=stats.diff.mean.numpy(), mean_diff_positions=stats.diff_pos.mean.numpy(),
                        positions_count=stats.diff_pos.count.numpy(), norms=stats.norms.mean[..., 0].numpy(),
                        relative_norm=stats.relative_norms().numpy(), category_cosines=cos.numpy(),
                        token_relevance=rel.numpy())
    top = {}
    for ci, cat in enumerate(cats if len(cats) > 1 else []):  # one data source: no other text to contrast with
        ids = torch.argsort(rel[ci], descending=True)[: cmd.top_n].tolist()
        top[cat] = [{"token": t, "id": i, "z": float(rel[ci, i])} for t, i in zip(display_tokens(tok, ids), ids, strict=True)]
    artifacts.write_json(run.file(RELEVANCE.path()), {
        "score": ("z-scored log-odds ratio with an informative Dirichlet prior, category vs the other categories"
                  if len(cats) > 1 else "none: one data source, no other categories to contrast its text with"),
        "categories": top})
    for layer, cc in coders.items():
        ls = lstats[layer]
        artifacts.write_npz(run.file(CROSSCODER.path(layer=layer)), base_norm=ls["base_norm"].numpy(),
                            ft_norm=ls["ft_norm"].numpy(), share=ls["share"].numpy(), freq=ls["freq"].numpy(),
                            freq_base_view=ls["freq_base_view"].numpy(), freq_ft_view=ls["freq_ft_view"].numpy(),
                            freq_category=ls["freq_category"].numpy(), losses=cc.losses,
                            W_dec=cc.model.W_dec.detach().numpy(), rms=list(cc.rms))
        ratios: dict[str, int] = {}
        for b, f in zip(ls["real_base_norm"].tolist(), ls["real_ft_norm"].tolist(), strict=True):
            r = xc.ratio_category(b, f)
            ratios[r] = ratios.get(r, 0) + 1
        artifacts.write_json(run.file(CROSSCODER_JSON.path(layer=layer)), {
            "layer": layer, "library": cc.library, "input": "[h_base / rms_base; h_ft / rms_ft]", "rms": list(cc.rms),
            "latents": cc.latents, **cc.settings, "vectors": int(samples[layer].base.shape[0]),
            "final_loss": cc.losses[-1], "explained_variance": cc.explained_variance, "seconds": cc.seconds,
            "view_rows": ls["view_rows"],
            "sides": xc.clusters(ls), "ratio_categories": ratios,
            "thresholds": {"ft_only": xc.FT_ONLY, "base_only": xc.BASE_ONLY, "shared_band": xc.SHARED_BAND,
                           "ratio": xc.RATIO}})
    figures = plots(run, stats, features, coders, lstats)
    write_reports(run, cmd, pair, stats, features, coders, figures)


def plots(run, stats, features, coders, lstats) -> list[tuple[str, str]]:
    plt = artifacts.pyplot()
    out = []
    rel = stats.relative_norms().numpy()
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(stats.categories), 1.5 + 0.3 * len(stats.layers)))
    im = ax.imshow(rel, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(stats.categories)))
    ax.set_xticklabels(stats.categories, rotation=30, ha="right")
    layer_axis(ax, stats.layers, "y")
    ax.set_ylabel("layer")
    ax.set_title("|mean(h_ft - h_base)| / mean |h|")
    fig.colorbar(im, ax=ax)
    artifacts.save_figure(run.file(HEATMAP.path()), fig)
    out.append((HEATMAP.path(), "Relative difference norm, layer x category"))
    for layer, cc in coders.items():
        ls = lstats[layer]
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
        ax.scatter(ls["base_norm"].numpy(), ls["ft_norm"].numpy(), s=6, c=ls["share"].numpy(), cmap="coolwarm_r",
                   vmin=0, vmax=1)
        ax.set_xlabel("decoder norm, base half")
        ax.set_ylabel("decoder norm, ft half")
        ax.set_title(f"crosscoder latents, layer {layer} (colour: share; 0 = ft-only)")
        artifacts.save_figure(run.file(DECODER_PLOT.path(layer=layer)), fig)
        out.append((DECODER_PLOT.path(layer=layer), f"Crosscoder decoder norms at layer {layer}"))
        fig, ax = plt.subplots(figsize=(5.4, 3.2))
        ax.plot(cc.losses)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (FVU)")
        ax.set_yscale("log")
        ax.set_title(f"crosscoder training, layer {layer}: EV {cc.explained_variance:.3f}")
        artifacts.save_figure(run.file(LOSS_PLOT.path(layer=layer)), fig)
        out.append((LOSS_PLOT.path(layer=layer), f"Crosscoder training loss at layer {layer}"))
    if features:
        artifacts.save_figure(run.file(EFFECTS_PLOT.path()), feature_effects(features))
        out.append((EFFECTS_PLOT.path(), "Causal effect of each feature"))
        artifacts.save_figure(run.file(CATEGORIES_PLOT.path()), feature_categories(features, stats.categories))
        out.append((CATEGORIES_PLOT.path(), "Category scores of each feature"))
    return out


def headline(features, stats, coders) -> Result:
    rel = stats.relative_norms()
    li, ci = divmod(int(rel.argmax()), rel.shape[1])
    top = [{"id": f["id"], "name": f["name"], "kind": f["kind"], "layer": f["layer"], "z": f["causal"]["z"],
            "z_specific": f["causal"]["z_specific"], "z_kl": f["causal"]["z_kl"], "steering_z": f["steering"]["z"],
            "causal_score": f["rank_score"],
            "delta_ce": f["causal"]["delta_ce"], "kl_drop_fraction": f["steering"]["kl_drop_fraction"]}
           for f in features[:5]]
    figures = {"features": len(features), "top_features": top, "peak_layer": stats.layers[li],
               "peak_category": stats.categories[ci], "peak_relative_norm": float(rel[li, ci]),
               "causal_features": sum(bool(f["causal_effect"]) for f in features),
               "specific_features": sum(bool(f["specific_effect"]) for f in features),
               "closing_features": sum(bool(f["closing_effect"]) for f in features),
               "crosscoder_explained_variance": {str(k): cc.explained_variance for k, cc in coders.items()}}
    lines = [f"largest difference: layer {stats.layers[li]}, category {stats.categories[ci]} "
             f"(relative norm {float(rel[li, ci]):.3f})"]
    for t in top:
        lines.append(f"{t['id']} [{t['kind']}] {t['name']}: causal score {t['causal_score']:.1f} "
                     f"(removal z {t['z_kl']:.1f}, steering z {t['steering_z']:.1f}; ablation z {t['z']:.1f}), "
                     f"dCE {t['delta_ce']:+.4f}, "
                     f"steering closes {100 * t['kl_drop_fraction']:.0f}% of KL(base||ft)")
    for k, cc in coders.items():
        lines.append(f"crosscoder layer {k} ({cc.library}): explained variance {cc.explained_variance:.3f}")
    return Result(headline=figures, lines=lines)
