"""lens: per-layer curves (KL(ft||base), layer-to-final KL, top-1 agreement), the per-prompt KL heatmap and
the promoted / suppressed tokens of the last layer."""

from __future__ import annotations

from ...commands.lens.artifacts import LAYER_METRICS, MATRICES, PROMOTED
from .. import svg
from ..finding import num, tokens
from ..html import esc, table
from ..registry import comparer, headliner, renderer


def _layers(run) -> list[dict]:
    return run.read(LAYER_METRICS) or []


@renderer("lens")
def render(run, ctx) -> str:
    rows = _layers(run)
    data = ", ".join(run.datasets.split("+"))
    out = ["<h2>Per-layer curves</h2><div class=\"grid\">"]
    if rows:
        xs = [r["layer"] for r in rows]
        out.append(svg.line_chart({"KL(ft || base)": (xs, [r["kl_ft_base"] for r in rows])},
                                  f"KL(ft || base) by layer: {run.comparison} on {data}", ylabel="KL (nats)"))
        out.append(svg.line_chart({"base: KL(final || layer)": (xs, [r["kl_base_final"] for r in rows]),
                                   "ft: KL(final || layer)": (xs, [r["kl_ft_final"] for r in rows])},
                                  f"layer-to-final KL: {run.comparison} on {data}", ylabel="KL (nats)"))
        out.append(svg.line_chart({"top-1 agreement": (xs, [r["top1_agreement"] for r in rows])},
                                  f"top-1 agreement by layer: {run.comparison} on {data}", ylabel="fraction",
                                  ylim=(0.0, 1.0)))
    out.append("</div>")
    if rows:
        cols = list(rows[0])
        out.append(table(cols, [[r.get(c) for c in cols] for r in rows], ctx.ids, filterable=False))
    m = run.read(MATRICES)
    if m is not None and "sample_kl_ft_base" in m:
        mat = m["sample_kl_ft_base"]
        samples = [f"sample {int(i)}" for i in m.get("sample_index", range(mat.shape[0]))]
        out.append("<h2>Prompts</h2>" + svg.heatmap(mat.tolist(), samples, [int(x) for x in m["layers"]],
                                                     f"KL(ft || base) per prompt and layer: {run.comparison} on {data}",
                                                     row_label="prompt", col_label="layer"))
    promoted = run.read(PROMOTED)
    if isinstance(promoted, dict):
        for side in ("promoted", "suppressed"):
            by_layer = promoted.get(side) or {}
            if by_layer:
                last = sorted(by_layer, key=lambda k: int(k) if str(k).lstrip("-").isdigit() else 0)[-1]
                toks = by_layer[last]
                out.append(f"<h3>{esc(side)} tokens at layer {esc(last)}</h3>")
                out.append(table(["rank", "token", "mean log-prob diff"],
                                 [[t.get("rank"), t.get("token"), t.get("mean_logprob_diff")] for t in toks],
                                 ctx.ids, token_cols=(1,)))
    return "".join(out)


@comparer("lens")
def compare(run) -> dict:
    rows = _layers(run)
    return {"curves": {"KL(ft || base)": [[r["layer"] for r in rows], [r["kl_ft_base"] for r in rows]]},
            "ylabel": "KL(ft || base)",
            "tokens": list(run.headline.get("top_promoted_last_layer", []))}


@headliner("lens")
def finding(run) -> list[tuple[str, str]]:
    """Where ft departs most from base (the layer of the largest KL) and what the last layer promotes."""
    h, out = run.headline, []
    layers, kl = h.get("layers") or [], h.get("kl_ft_base") or []
    peak = h.get("peak_kl_layer")
    if peak in layers and len(kl) == len(layers):
        out.append(("largest KL(ft || base)", f"layer {peak}: {num(kl[layers.index(peak)])} nats"))
    if h.get("top_promoted_last_layer"):
        out.append(("promoted at the last layer", tokens(h["top_promoted_last_layer"])))
    return out
