"""mine: every ordering as a sortable, searchable table with its bar and scatter plots; NMF topics side by
side; the agent overview payload (``mine overview``) when present."""

from __future__ import annotations

import json

from ...commands.mine.artifacts import INDEX, locate
from .. import svg
from ..finding import tokens
from ..html import esc, table
from ..registry import comparer, headliner, renderer


def _orderings(run) -> dict[str, list[dict]]:
    index = run.read(INDEX)
    if index is not None and not isinstance(index, dict):
        run.warn(f"{INDEX.path()} is not a JSON object (dataset -> orderings)")
    return index if isinstance(index, dict) else {}


def _tokens(run, entry: dict) -> tuple[str, list[dict]]:
    """The label and tokens of an index entry's ordering, read from the declared file the entry names."""
    found = locate(str(entry.get("file", "")))
    if found is None:
        run.warn(f"{INDEX.path()} names {entry.get('file')!r}, not a file mine declares")
        return entry.get("display_label", ""), []
    artifact, values = found
    data = run.read(artifact, **values)
    if not isinstance(data, dict):
        return entry.get("display_label", ""), []
    if "orderings" in data:
        match = [o for o in data["orderings"] if o.get("ordering_id") == entry.get("ordering_id")] or data["orderings"][:1]
        data = match[0] if match else {}
    return data.get("display_label", entry.get("display_label", "")), list(data.get("tokens", []))


@renderer("mine")
def render(run, ctx) -> str:
    out = []
    for dataset, entries in _orderings(run).items():
        out.append(f"<h2>Dataset {esc(dataset)}</h2>")
        topics = []
        for entry in entries:
            label, toks = _tokens(run, entry)
            oid = entry.get("ordering_id", "")
            if oid.startswith("nmf_topic"):
                topics.append((oid, label, toks))
                continue
            out.append(f"<h3>{esc(oid)}</h3><div class=\"muted\">{esc(label)}</div>")
            rows = [[i + 1, t.get("token_str", ""), t.get("ordering_value"), t.get("avg_logit_diff"),
                     t.get("count_positive"), t.get("count_negative")] for i, t in enumerate(toks)]
            out.append('<div class="grid"><div>')
            out.append(table(["rank", "token", "value", "avg diff (ft - base)", "count +", "count -"], rows, ctx.ids,
                             token_cols=(1,), limit=100))
            out.append('</div><div class="stack">')  # the two charts one above the other, beside the table
            top = toks[:20]
            out.append(svg.bar_chart([t.get("token_str", "") for t in top], [t.get("ordering_value", 0) for t in top],
                                     f"{oid}: top tokens, {run.comparison} on {dataset}", xlabel="ordering value"))
            out.append(svg.scatter([(t.get("ordering_value"), t.get("avg_logit_diff"), t.get("token_str", "")) for t in toks[:100]],
                                   f"{oid}, {run.comparison} on {dataset}", "ordering value",
                                   "avg logit diff (ft - base)", count_in_title=True))
            out.append("</div></div>")
        if topics:
            out.append("<h3>NMF topics</h3><div class=\"side\">")
            for _oid, label, toks in topics:
                rows = [[t.get("token_str", ""), t.get("ordering_value"), t.get("avg_logit_diff")] for t in toks[:15]]
                out.append(f"<div><b>{esc(label)}</b>" + table(["token", "weight", "avg diff"], rows, ctx.ids,
                                                                 token_cols=(0,), filterable=False) + "</div>")
            out.append("</div>")
    overviews = sorted(run.path.parent.glob(f"{run.path.name}.overview_budget*.json")) + sorted(run.path.glob("overview*.json"))
    for p in overviews[:2]:
        try:
            text = json.dumps(json.loads(p.read_text(encoding="utf-8")), indent=1)
        except (OSError, ValueError) as err:
            run.warn(f"unreadable overview payload {p.name}: {err}")
            continue
        out.append(f"<h2>Agent overview payload</h2><details open><summary>{esc(p.name)}</summary>"
                   f'<pre class="json">{esc(text[:200000])}</pre></details>')
    return "".join(out)


@comparer("mine")
def compare(run) -> dict:
    for dataset, entries in _orderings(run).items():
        for entry in entries:
            if not entry.get("ordering_id", "").startswith("nmf_topic"):
                label, toks = _tokens(run, entry)
                return {"title": f"{entry.get('ordering_id')} on {dataset}",
                        "tokens": [t.get("token_str", "") for t in toks[:20]],
                        "values": [t.get("ordering_value") for t in toks[:20]]}
    datasets = run.headline.get("datasets") or {}
    for dataset, d in datasets.items():
        return {"title": f"top promoted on {dataset}", "tokens": list(d.get("top_promoted", []))}
    return {}


@headliner("mine")
def finding(run) -> list[tuple[str, str]]:
    """The top promoted tokens of each dataset's headline ordering."""
    out = []
    for dataset, d in (run.headline.get("datasets") or {}).items():
        if isinstance(d, dict) and d.get("top_promoted"):
            out.append((f"promoted on {dataset} ({d.get('ordering', 'ordering')})", tokens(d["top_promoted"])))
    return out
