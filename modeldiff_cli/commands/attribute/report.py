"""Metrics per method (aggregate and per layer) and every output file (declared in ``artifacts.py``: the per-method
scores, the rankings, the influence scores, the metrics as JSON, CSV and the printed table, the recall@k plot);
and the headline (the table's main figures per method)."""

from __future__ import annotations

import numpy as np

from ...core.spine import artifacts
from .artifacts import INFLUENCE, METRICS_CSV, METRICS_JSON, METRICS_MD, RANKINGS, RECALL_PLOT, SCORES
from .ground_truth import Truth
from .metrics import partner_summary, summarize

TOP = 50  # RANKINGS: the best documents kept per (query, method)


def evaluate(scores: dict[str, dict], truth: Truth, ks: list[int]) -> dict:
    """``{method: {"aggregate": {subset: {...}}, "per_layer": [...], "wrapper_partner": {...}}}``."""
    wrapper_rows = np.array([i for i, k in enumerate(truth.kinds) if k == "wrapper"], dtype=int)
    out = {}
    for m, s in scores.items():
        res = {"aggregate": summarize(s["scores"], truth.relevant, truth.category, truth.groups, truth.kinds, tuple(ks))}
        # recall@10 and @50 of the partner documents, and at the cut-off the tables and headline show
        partner_ks = tuple(sorted({10, 50, _k_show(ks)}))
        res["wrapper_partner"] = partner_summary(s["scores"], truth.category, truth.groups, wrapper_rows, partner_ks)
        if s["per_layer"] is not None:
            res["per_layer"] = [summarize(p, truth.relevant, truth.category, truth.groups, truth.kinds, tuple(ks))
                                for p in s["per_layer"]]
        out[m] = res
    return out


def _k_show(ks: list[int]) -> int:
    return 10 if 10 in ks else ks[len(ks) // 2]


def column_note(k: int, hops: bool) -> str:
    """What the table's columns mean (one paragraph, printed under the table)."""
    text = (f"Columns: R@{k} / P@{k}: recall / precision of the top {k} training documents (the share of the "
            f"query's relevant documents found / the share of the top {k} that are relevant); MAP: mean average "
            "precision; AUC: ROC-AUC of relevant vs other documents (0.5 = random); all over every query")
    if hops:
        text += (f". base / wrap: the same over base-function queries / wrapper-function queries only (a wrapper "
                 f"calls a base function); wrap→partner R@{k} / AUC: for wrapper queries, the partner (the wrapped "
                 "base function's) documents alone, which share no words with the query: the documents only a "
                 f"method that follows the model's computation finds; /ceil: the base / wrap R@{k} before it as a "
                 f"share of its ceiling min(1, {k} / relevant documents) (a query with more than {k} relevant "
                 f"documents cannot reach recall 1 in its top {k})")
    return text + "."


def markdown_table(results: dict, ks: list[int]) -> str:
    """The hops table (base / wrapper / partner columns) when the queries have hops kinds, else the generic one
    (all queries only), with a note saying what the columns mean; a note says why partner columns are blank."""
    k = _k_show(ks)
    first = next(iter(results.values()))["aggregate"]
    if not ({"base", "wrapper"} & set(first)):
        head = ["method", f"R@{k}", f"P@{k}", "MAP", "AUC"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, res in results.items():
            agg = res["aggregate"]["all"]
            lines.append("| " + " | ".join([m] + [_fmt(agg.get(n, float("nan"))) for n in
                                                  (f"recall@{k}", f"precision@{k}", "map", "auc")]) + " |")
        return "\n".join([*lines, "", column_note(k, hops=False)])
    cols = [("all", f"recall@{k}"), ("all", f"precision@{k}"), ("all", "map"), ("all", "auc"),
            ("base", f"recall@{k}"), ("base", f"recall_of_ceiling@{k}"), ("base", "auc"),
            ("wrapper", f"recall@{k}"), ("wrapper", f"recall_of_ceiling@{k}"), ("wrapper", "auc")]
    head = ["method", f"R@{k}", f"P@{k}", "MAP", "AUC", f"base R@{k}", "/ceil", "base AUC", f"wrap R@{k}", "/ceil",
            "wrap AUC", f"wrap→partner R@{k}", "wrap→partner AUC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, res in results.items():
        agg = res["aggregate"]
        vals = [agg.get(s, {}).get(name, float("nan")) for s, name in cols]
        part = res.get("wrapper_partner", {})
        vals += [part.get(f"partner_recall@{k}", float("nan")), part.get("partner_auc", float("nan"))]
        lines.append("| " + " | ".join([m] + [_fmt(x) for x in vals]) + " |")
    if not any(np.isfinite(res.get("wrapper_partner", {}).get("partner_auc", np.nan)) for res in results.values()):
        lines.append("\nwrap→partner: – (no wrapper query has partner documents: no partner function in the ground "
                     "truth, or `relevant` lists without hops func / role fields)")
    return "\n".join([*lines, "", column_note(k, hops=True)])


def _fmt(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def csv_rows(results: dict, layers: list[int] | None = None) -> list[dict]:
    """One row per (method, layer, subset, metric, k); layer = "aggregate" or the model layer's index."""
    rows = []
    for m, res in results.items():
        per = res.get("per_layer", [])
        names = [str(layers[i]) if layers and len(layers) == len(per) else str(i) for i in range(len(per))]
        blocks = [("aggregate", res["aggregate"])] + list(zip(names, per))
        for layer, summary in blocks:
            for subset, metrics in summary.items():
                for name, value in metrics.items():
                    metric, _, k = name.partition("@")
                    rows.append({"method": m, "layer": layer, "subset": subset, "metric": metric, "k": k, "value": value})
        for name, value in res.get("wrapper_partner", {}).items():
            metric, _, k = name.partition("@")
            rows.append({"method": m, "layer": "aggregate", "subset": "wrapper", "metric": metric, "k": k, "value": value})
    return rows


def _letter(func: str) -> str:
    s = str(func).strip("<>")
    return (s[:-1] if len(s) > 1 and s.endswith("N") else s).lower()


def write_outputs(run, scores: dict, results: dict, truth: Truth, train_rows: list[dict], query_rows: list[dict],
                  layers: list[int], timing: dict, context: str = "", settings: dict | None = None) -> None:
    qids = np.array([r["_uid"] for r in query_rows])
    tids = np.array([r["_uid"] for r in train_rows])
    for m, s in scores.items():
        arrays = {"scores": s["scores"], "query_uids": qids, "train_uids": tids}
        if s["per_layer"] is not None:
            arrays.update(per_layer=s["per_layer"], layers=np.array(layers))
        artifacts.write_npz(run.file(SCORES.path(method=m)), **arrays)
    artifacts.write_jsonl(run.file(RANKINGS.path()), _rankings(scores, truth, train_rows, query_rows))
    artifacts.write_jsonl(run.file(INFLUENCE.path()), _influence(scores, truth, train_rows))
    ks = result_ks(results)
    artifacts.write_json(run.file(METRICS_JSON.path()), {
        "methods": results, "ks": ks, "layers": layers, "n_train": len(train_rows), "n_queries": len(query_rows),
        "extraction": timing, "layer_selection": timing.get("layer_selection"), "settings": settings or {}, "notes": [
            "metrics are averaged per function (query group), then across functions",
            "ties: stable order for top-k and MAP; half a count in ROC-AUC",
        ] + ([f"k > {len(train_rows)} training documents: clipped to {len(train_rows)}"] if ks[-1] > len(train_rows) else []),
    })
    artifacts.write_csv(run.file(METRICS_CSV.path()), csv_rows(results, layers), list(METRICS_CSV.columns))
    _plot(run.file(RECALL_PLOT.path()), results, ks, context)
    artifacts.write_text(run.file(METRICS_MD.path()), markdown_table(results, ks) + "\n")


def result_ks(results: dict) -> list[int]:
    first = next(iter(results.values()))["aggregate"]["all"]
    return sorted({int(n.split("@")[1]) for n in first if n.startswith("recall@")})


def _rankings(scores, truth: Truth, train_rows, query_rows):
    cat_names = {0: "other", 1: "own", 2: "partner", 3: "distractor"}
    for q, rec in enumerate(query_rows):
        for m, s in scores.items():
            row = s["scores"][q]
            top = np.argsort(-row, kind="stable")[:TOP]
            yield {
                "query_uid": rec["_uid"], "method": m, "func": rec.get("func"), "role": rec.get("role"),
                "kind": truth.kinds[q], "text": rec["_text"],
                "top": [{"rank": r + 1, "uid": train_rows[i]["_uid"], "score": float(row[i]),
                         f"{m}_influence_score": float(row[i]), "func": train_rows[i].get("func"),
                         "role": train_rows[i].get("role"), "relevant": bool(truth.relevant[q, i]),
                         "category": cat_names[int(truth.category[q, i])]} for r, i in enumerate(top)],
            }


def _influence(scores, truth: Truth, train_rows):
    """Per training document: ``{method}_influence_score`` (mean over all queries) and, per query function f,
    ``{method}_{f}_influence_score`` (mean over f's queries; f as a letter, hops style: <GN> -> g)."""
    groups: dict[str, list[int]] = {}
    for q, g in enumerate(truth.groups):
        groups.setdefault(g, []).append(q)
    means = {m: {g: np.where(np.isfinite(s["scores"][rows]), s["scores"][rows], np.nan) for g, rows in groups.items()}
             for m, s in scores.items()}
    for i, r in enumerate(train_rows):
        rec = {k: r.get(k) for k in ("func", "role", "constant", "hop_depth")}
        rec = {"uid": r["_uid"], **rec, "text": r["_text"]}
        for m, s in scores.items():
            col = s["scores"][:, i]
            rec[f"{m}_influence_score"] = float(np.nanmean(np.where(np.isfinite(col), col, np.nan))) if np.isfinite(col).any() else None
            for g, vals in means[m].items():
                v = vals[:, i]
                rec[f"{m}_{_letter(g)}_influence_score"] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        yield rec


MARKERS = "osD^vP*Xh<>"


def _plot(path, results: dict, ks: list[int], context: str = "") -> None:
    """Recall@k per query subset, one line per method (its own marker; the ``random`` baseline dotted black);
    one legend below the panels, off the curves; ``context`` ("old vs new on <data>") as the suptitle, above
    the panel titles."""
    plt = artifacts.pyplot()
    subsets = [s for s in ("all", "base", "wrapper") if s in next(iter(results.values()))["aggregate"]]
    fig, axes = plt.subplots(1, len(subsets), figsize=(4.2 * len(subsets), 3.6), squeeze=False,
                             layout="constrained")
    for ax, subset in zip(axes[0], subsets, strict=True):
        for i, (m, res) in enumerate(results.items()):
            style = ({"ls": ":", "color": "k", "marker": "x"} if m == "random"
                     else {"ls": "-", "marker": MARKERS[i % len(MARKERS)]})
            ax.plot(ks, [res["aggregate"][subset].get(f"recall@{k}") for k in ks], label=m, ms=4, lw=1.3, **style)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k")
        ax.set_title(f"recall@k, {subset} queries", fontsize=9)
    axes[0][0].set_ylabel("recall")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=7, frameon=False)
    if context:
        fig.suptitle(f"training-data attribution: {context}", fontsize=10)
    artifacts.save_figure(path, fig)


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def headline(results: dict, timing: dict, n_q: int, n_t: int, settings: dict | None = None):
    """summary.json's headline (the table's main figures per method) and the lines printed today."""
    from ...core.spine.command import Result

    ks = result_ks(results)
    k = _k_show(ks)
    best = max(results, key=lambda m: np.nan_to_num(results[m]["aggregate"]["all"].get("map", np.nan), nan=-1))
    sps = timing.get("samples_per_s")
    speed = f"; extraction {sps:.1f} samples/s" if sps else " (vectors from the cache)" if timing["samples"] == 0 else ""
    agg = results[best]["aggregate"]
    def of_ceiling(kind: str) -> str:  # recall@k as a share of min(1, k / relevant documents)
        share = agg[kind].get(f"recall_of_ceiling@{k}")
        return f" ({share:.3f} of its ceiling)" if share is not None and np.isfinite(share) else ""

    kinds = "".join(f", {kind} {agg[kind][f'recall@{k}']:.3f}{of_ceiling(kind)}" for kind in ("base", "wrapper")
                    if kind in agg)
    partner = results[best].get("wrapper_partner", {}).get(f"partner_recall@{k}")
    partner_text = (f"; wrapper→partner recall@{k} {partner:.3f} (the documents of the wrapped function, which "
                    "share no words with the query)" if partner is not None and np.isfinite(partner) else "")
    line = (f"attribute: {n_q} queries x {n_t} training documents; headline method {best} (best MAP of the "
            f"methods run, {agg['all']['map']:.3f}): recall@{k} all {agg['all'][f'recall@{k}']:.3f}{kinds}"
            f"{partner_text}{speed}")
    per_method = {}
    for m, res in results.items():
        agg = res["aggregate"]
        row = {"all": {name: _num(agg["all"].get(name)) for name in (f"recall@{k}", f"recall_of_ceiling@{k}",
                                                                     f"precision@{k}", "map", "auc")}}
        for subset in ("base", "wrapper"):
            if subset in agg:
                row[subset] = {name: _num(agg[subset].get(name)) for name in (f"recall@{k}", f"recall_of_ceiling@{k}", "auc")}
        part = res.get("wrapper_partner", {})
        if part:
            row["wrapper_partner"] = {f"recall@{k}": _num(part.get(f"partner_recall@{k}")), "auc": _num(part.get("partner_auc"))}
        per_method[m] = row
    figures = {"queries": n_q, "train_documents": n_t, "k": k, "best_method": best, "headline_method": best,
               "headline_rule": "best MAP over all queries", "headline": per_method[best],
               f"partner_recall@{k}": _num(partner) if partner is not None else None,
               "methods": per_method, "samples_per_s": sps, "settings": settings or {}}
    return Result(headline=figures, lines=[line, *markdown_table(results, ks).splitlines()])
