"""Everything `nll` writes: per-layer metrics (CSV), per item x layer matrices (NPZ), a summary (JSON), plots
(their names and columns: ``artifacts.py``); and the headline figures of the run (summary.json)."""

from __future__ import annotations

import math

from ...core.spine import artifacts
from .artifacts import COLUMNS, LAYER_METRICS, MATRICES, SUMMARY
from .plots import plot_curves


def _nanmean(col):
    import torch

    ok = ~torch.isnan(col)
    return float(col[ok].mean()) if ok.any() else math.nan


def layer_rows(views: dict, js_mode: str) -> list[dict]:
    pooled = views["pooled"]
    rows = []
    for layer in range(views["nll_a_all"].shape[1]):
        r = {"layer": layer}
        for m in ("nll_a", "nll_b", "top1_a", "top1_b"):
            r[f"{m}_all"] = float(pooled[m][layer])
            r[f"{m}_last"] = _nanmean(views[f"{m}_last"][:, layer])
        for v in ("all", "last"):
            r[f"delta_{v}"] = r[f"nll_b_{v}"] - r[f"nll_a_{v}"]
            r[f"logp_a_{v}"], r[f"logp_b_{v}"] = -r[f"nll_a_{v}"], -r[f"nll_b_{v}"]
        r["js_all"] = float(pooled["js"][layer]) if js_mode == "all" else None
        r["js_last"] = _nanmean(views["js_last"][:, layer]) if js_mode != "none" else None
        rows.append({k: r[k] for k in COLUMNS})
    return rows


def write_outputs(run, views: dict, cond, setup, o) -> dict:
    rows = layer_rows(views, o.js_mode)
    artifacts.write_csv(run.file(LAYER_METRICS.path()), rows, list(COLUMNS))
    mats = {k: v.numpy() for k, v in views.items() if k not in ("pooled",) and not (k.startswith("js") and o.js_mode == "none")}
    artifacts.write_npz(run.file(MATRICES.path()), item_ids=[it.id for it in cond.items],
                        layers=list(range(len(rows))), **mats)
    last = rows[-1]
    summary = {
        "mode": setup.mode, "labels": {"a": setup.labels[0], "b": setup.labels[1]}, "sources": setup.sources,
        "items": len(cond.items), "scored_positions": int(views["n_positions"].sum()), "js_mode": o.js_mode,
        "delta": "NLL(B) - NLL(A); negative = B predicts the targets better",
        "views": {"all": "pooled over every scored position", "last": "mean over items of the last scored position"},
        "last_layer": last,
        "best_layer": {
            "a_all": min(rows, key=lambda r: r["nll_a_all"])["layer"],
            "b_all": min(rows, key=lambda r: r["nll_b_all"])["layer"],
        },
        "layers": rows,
    }
    artifacts.write_json(run.file(SUMMARY.path()), summary)
    plot_curves(run, rows, setup.labels, o.js_mode, " + ".join(o.fp.names))
    return summary


def headline(summary: dict, labels: tuple[str, str]):
    """Last-layer NLL of A and B, their delta (both views) and JS when computed; the lines printed for them."""
    from ...core.spine.command import Result

    last = summary["last_layer"]
    a, b = labels
    figures = {
        "mode": summary["mode"], "labels": {"a": a, "b": b}, "items": summary["items"],
        "scored_positions": summary["scored_positions"], "layer": last["layer"],
        "nll_a": last["nll_a_all"], "nll_b": last["nll_b_all"], "delta": last["delta_all"],
        "nll_a_last": last["nll_a_last"], "nll_b_last": last["nll_b_last"], "delta_last": last["delta_last"],
    }
    lines = [
        f"last layer ({last['layer']}): NLL {a} {last['nll_a_all']:.4f} vs {b} {last['nll_b_all']:.4f} "
        f"(delta {b}-{a} {last['delta_all']:+.4f}) over all scored positions; last position: "
        f"{last['nll_a_last']:.4f} vs {last['nll_b_last']:.4f} (delta {last['delta_last']:+.4f})"
    ]
    js = {k: last[k] for k in ("js_all", "js_last") if last[k] is not None}
    if js:
        figures.update(js)
        lines.append(f"last layer JS({a}, {b}): " + ", ".join(f"{k.split('_')[1]} {v:.4f}" for k, v in js.items()))
    return Result(headline=figures, lines=lines)
