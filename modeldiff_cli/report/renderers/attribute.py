"""attribute: the metrics table by method and query kind, recall@k curves per method, and the top training
documents of each query (the first rankings, one per query and method; relevant ones marked)."""

from __future__ import annotations

from ...commands.attribute.artifacts import METRICS_JSON, RANKINGS
from .. import svg
from ..finding import num
from ..html import Raw, esc, table
from ..registry import comparer, headliner, renderer

COLUMNS = ("recall@{k} / precision@{k}: the share of the query's relevant training documents in the top {k} / "
           "the share of the top {k} that are relevant; MAP: mean average precision; ROC-AUC: relevant vs other "
           "documents (0.5 = random). Query kind: all queries, base-function queries, or wrapper-function queries "
           "(a wrapper calls a base function). wrapper→partner recall@{k}: for wrapper queries, the recall of the "
           "partner documents alone (those of the wrapped base function), which share no words with the query: "
           "only a method that follows the model's computation finds them. recall@{k} / ceiling: recall@{k} as a "
           "share of its ceiling min(1, {k} / relevant documents), the most a query with more than {k} relevant "
           "documents can reach.")
TOP_QUERIES = 60  # RANKINGS lines read (one per query and method); the file itself can be megabytes


def _metrics(run) -> dict:
    m = run.read(METRICS_JSON)
    return m if isinstance(m, dict) else {}


@renderer("attribute")
def render(run, ctx) -> str:
    m = _metrics(run)
    methods = m.get("methods") or {}
    ks = m.get("ks") or []
    k = run.headline.get("k", 10)
    best = run.headline.get("headline_method", run.headline.get("best_method", "?"))
    partner = (methods.get(best) or {}).get("wrapper_partner", {}).get(f"partner_recall@{k}")
    part = f"; its wrapper→partner recall@{k}: {partner:.3f}" if isinstance(partner, (int, float)) else ""
    out = [f'<p class="muted">{esc(m.get("n_queries", "?"))} queries x {esc(m.get("n_train", "?"))} training documents; '
           f'headline method (best MAP): {esc(best)}{esc(part)}</p>']
    rows = []
    for method, d in methods.items():
        wp = (d.get("wrapper_partner") or {})
        for kind, vals in (d.get("aggregate") or {}).items():
            rows.append([method, kind, vals.get(f"recall@{k}"), vals.get(f"recall_of_ceiling@{k}"),
                         vals.get(f"precision@{k}"), vals.get("map"),
                         vals.get("auc"), wp.get(f"partner_recall@{k}") if kind == "wrapper" else None,
                         vals.get("n_queries")])
    if rows:
        out.append("<h2>Metrics by method and query kind</h2>")
        out.append(table(["method", "query kind", f"recall@{k}", f"recall@{k} / ceiling", f"precision@{k}", "MAP", "ROC-AUC",
                          f"wrapper→partner recall@{k}", "queries"], rows, ctx.ids))
        out.append(f'<p class="muted">{esc(COLUMNS.format(k=k))}</p>')
    if ks and methods:
        kinds = sorted({kind for d in methods.values() for kind in (d.get("aggregate") or {})}, key=lambda s: s != "all")
        out.append('<h2>Recall@k</h2><div class="grid">')
        for kind in kinds:
            series = {method: (ks, [(d.get("aggregate") or {}).get(kind, {}).get(f"recall@{x}") for x in ks])
                      for method, d in methods.items()}
            out.append(svg.line_chart(series, f"recall@k by method ({kind} queries): {run.comparison} on {run.datasets}", xlabel="k",
                                      ylabel="recall@k", ylim=(0.0, 1.0)))  # ticks at the ks
        out.append("</div>")
    rankings = run.read(RANKINGS, limit=TOP_QUERIES)
    if rankings:
        out.append(f"<h2>Top documents per query</h2><div class=\"muted\">first {len(rankings)} rankings "
                   "(query x method); relevant documents in bold</div>")
        trs = []
        for r in rankings:
            docs = " · ".join((f"<b>{esc(t.get('uid'))}</b>" if t.get("relevant") else esc(t.get("uid")))
                              for t in (r.get("top") or [])[:5])
            trs.append([r.get("query_uid", ""), r.get("method", ""), r.get("kind", ""), r.get("text", ""), Raw(docs)])
        out.append(table(["query", "method", "kind", "text", "top 5 documents"], trs, ctx.ids))
    return "".join(out)


@comparer("attribute")
def compare(run) -> dict:
    m = _metrics(run)
    ks = m.get("ks") or []
    curves = {method: [ks, [(d.get("aggregate") or {}).get("all", {}).get(f"recall@{x}") for x in ks]]
              for method, d in (m.get("methods") or {}).items()}
    return {"curves": curves, "ylabel": "recall@k (all queries)", "xlabel": "k"}


@headliner("attribute")
def finding(run) -> list[tuple[str, str]]:
    """The headline method (best MAP) with its MAP and recall@k, and its wrapper->partner recall."""
    h, out = run.headline, []
    k = h.get("k", 10)
    best = h.get("headline_method", h.get("best_method"))
    m = (h.get("headline") or (h.get("methods") or {}).get(best) or {})
    overall = m.get("all") if isinstance(m, dict) else None
    if best and isinstance(overall, dict):
        out.append(("best method (MAP)", f"{best}: MAP {num(overall.get('map'))}, "
                    f"recall@{k} {num(overall.get(f'recall@{k}'))}"))
        partner = (m.get("wrapper_partner") or {}).get(f"recall@{k}")
        if isinstance(partner, (int, float)):
            out.append((f"wrapper->partner recall@{k}", num(partner)))
    if isinstance(h.get("queries"), int):
        out.append(("queries", f"{h['queries']:,} x {num(h.get('train_documents'))} training documents"))
    return out
