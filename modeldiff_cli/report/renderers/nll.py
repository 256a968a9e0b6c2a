"""nll: per-layer NLL (logit lens) of each side, all positions and last position views, the delta and JS
curves, and the per-item delta heatmap."""

from __future__ import annotations

from ...commands.nll.artifacts import LAYER_METRICS, MATRICES
from .. import svg
from ..finding import num, signed
from ..html import table
from ..registry import comparer, headliner, renderer


def _labels(run) -> tuple[str, str]:
    labels = run.headline.get("labels") or {}
    return str(labels.get("a", "a")), str(labels.get("b", "b"))


@renderer("nll")
def render(run, ctx) -> str:
    rows = run.read(LAYER_METRICS) or []
    a, b = _labels(run)
    data = run.datasets
    out = ["<h2>Per-layer curves (logit lens)</h2><div class=\"grid\">"]
    if rows:
        xs = [r["layer"] for r in rows]
        for view, what in (("all", "all positions"), ("last", "last position")):
            out.append(svg.line_chart({f"NLL {a}": (xs, [r.get(f"nll_a_{view}") for r in rows]),
                                       f"NLL {b}": (xs, [r.get(f"nll_b_{view}") for r in rows])},
                                      f"NLL by layer, {what}: {a} vs {b} on {data}", ylabel="NLL (nats)"))
        out.append(svg.line_chart({"all positions": (xs, [r.get("delta_all") for r in rows]),
                                   "last position": (xs, [r.get("delta_last") for r in rows])},
                                  f"delta NLL ({b} - {a}) by layer on {data}", ylabel="delta NLL"))
        # --js-mode all fills both views, last only js_last, none neither (empty cells)
        js = {view: (xs, [r.get(f"js_{view}") for r in rows]) for view in ("all", "last")
              if any(isinstance(r.get(f"js_{view}"), (int, float)) for r in rows)}
        if js:
            out.append(svg.line_chart(js, f"JS({a}, {b}) by layer on {data}", ylabel="JS"))
    out.append("</div>")
    if rows:
        cols = list(rows[0])
        out.append(table(cols, [[r.get(c) for c in cols] for r in rows], ctx.ids, filterable=False))
    m = run.read(MATRICES)
    if m is not None and "nll_a_all" in m and "nll_b_all" in m:
        diff = (m["nll_b_all"] - m["nll_a_all"]).tolist()
        items = [str(x) for x in m.get("item_ids", range(len(diff)))]
        out.append("<h2>Items</h2>" + svg.heatmap(diff, items, [int(x) for x in m["layers"]],
                                                   f"delta NLL ({b} - {a}) per item and layer on {data}",
                                                   row_label="item", col_label="layer", diverging=True))
    return "".join(out)


@comparer("nll")
def compare(run) -> dict:
    rows = run.read(LAYER_METRICS) or []
    a, b = _labels(run)
    return {"curves": {f"delta NLL ({b} - {a})": [[r["layer"] for r in rows], [r.get("delta_all") for r in rows]]},
            "ylabel": "delta NLL (all positions)"}


@headliner("nll")
def finding(run) -> list[tuple[str, str]]:
    """NLL of each side at the readout layer: all scored positions, and the last position."""
    h, out = run.headline, []
    a, b = _labels(run)
    for suffix, where in (("", "all positions"), ("_last", "last position")):
        va, vb, d = h.get(f"nll_a{suffix}"), h.get(f"nll_b{suffix}"), h.get(f"delta{suffix}")
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            layer = f"layer {h['layer']}, " if h.get("layer") is not None else ""
            out.append((f"NLL ({layer}{where})", f"{a} {num(va)} vs {b} {num(vb)} (delta {signed(d)})"))
    return out
