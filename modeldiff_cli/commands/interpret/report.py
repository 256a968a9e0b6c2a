"""report.md and a self-contained report.html (figures inline as base64 PNG data URIs; no network).

Sections (alignmt's): summary of the differences, feature overview, layer-by-layer analysis, figures,
conclusion."""

from __future__ import annotations

import base64
import html

from ...core.spine import artifacts
from .artifacts import REPORT_HTML, REPORT_MD
from .causal_reading import SIGN_NOTE, effect_reading


def _sections(cmd, pair, stats, features, coders) -> list[tuple[str, list[str]]]:
    rel = stats.relative_norms()
    li, ci = divmod(int(rel.argmax()), rel.shape[1])
    base, ft = pair.base.source.label, pair.ft.source.label
    causal = [f for f in features if f["causal_effect"]]
    what = (f"{len(stats.categories)} categories ({', '.join(stats.categories)})" if len(stats.categories) > 1 else
            f"one data source (`{stats.categories[0]}`: the difference on this data, no contrast between categories, "
            "so no category-specific directions and no token relevance)")
    summary = [
        f"Base `{base}` vs fine-tune `{ft}` on {what}, {stats.tokens} tokens, "
        f"layers {stats.layers[0]}..{stats.layers[-1]}.",
        f"The largest activation difference is at layer {stats.layers[li]} on `{stats.categories[ci]}` "
        f"(|mean(h_ft - h_base)| = {float(rel[li, ci]):.3f} of the mean activation norm).",
        f"{len(features)} features were named and ranked by their causal effect, the causal score "
        f"(removal z + steering z) / sqrt(2): removing a feature from ft brings ft closer to base (KL(ft||base) "
        f"drops) and adding it to base brings base closer to ft (KL(base||ft) drops), each against random "
        f"directions; {len(causal)} have a causal effect (score > 3). Reading the signs: {SIGN_NOTE}.",
    ]
    if features:
        f = features[0]
        summary.append(f"Strongest feature: **{f['name']}** (causal score {f['rank_score']:.1f}: removal z "
                       f"{f['causal']['z_kl']:.1f}, steering z {f['steering']['z']:.1f}; ablation z {f['causal']['z']:.1f}, "
                       f"dCE {f['causal']['delta_ce']:+.4f} on `{_best(f)}`).")
    def others(c: dict) -> str:  # one data source: no other category to measure the removal on
        return f"{c['delta_ce_others']:+.4f}" if len(stats.categories) > 1 else "n/a"

    overview = ["| id | name | kind | layer | side | causal score | removal z | steering z | ablation z | z specific | "
                "dCE own | dCE others | KL(ft‖base) closed by removal | KL(base‖ft) closed by steering | top tokens |",
                "|---" * 15 + "|"]
    for f in features:
        c, s = f["causal"], f["steering"]
        toks = ", ".join(repr(t) for t in f["tokens"][:8])
        overview.append(f"| {f['id']} | {f['name']} | {f['kind']} | {f['layer']} | {f['side']} | {f['rank_score']:.1f} | "
                        f"{c['z_kl']:.1f} | {s['z']:.1f} | {c['z']:.1f} | {c['z_specific']:.1f} | "
                        f"{c['delta_ce']:+.4f} | {others(c)} | {100 * c['kl_drop_fraction']:.0f}% | "
                        f"{100 * s['kl_drop_fraction']:.0f}% | {toks} |")
    overview.append("")
    overview.append("Not causal toward base (causal score <= 3): "
                    + ("; ".join(f"{f['id']} ({_reading(f)})" for f in features if not f["causal_effect"]) or "none")
                    + ".")
    overview += ["", *category_table(features, stats.categories)]
    for f in features[:8]:
        if f.get("merged"):
            overview.append("")
            overview.append(f"{f['id']} ({_source(f)}) also stands for near-duplicates (cosine > 0.9):")
            overview += [f"- {_source(m)}, cosine {m['cos']:.2f}: {', '.join(repr(t) for t in m['tokens'][:5])}; "
                         f"ablation z {m['causal']['z']:.1f}, removal z {m['causal']['z_kl']:.1f}"
                         for m in f["merged"]]
        if f["examples"]:
            overview.append("")
            overview.append(f"Top contexts of {f['id']}:")
            overview += [f"- `{e['category']}` {e['context']}" for e in f["examples"][:3]]
    layers = ["| layer | " + " | ".join(stats.categories) + " | strongest |", "|---" * (len(stats.categories) + 2) + "|"]
    for i, layer in enumerate(stats.layers):
        vals = [float(rel[i, c]) for c in range(len(stats.categories))]
        best = stats.categories[max(range(len(vals)), key=lambda c: vals[c])]
        layers.append(f"| {layer} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {best} |")
    for layer, cc in coders.items():
        layers.append("")
        layers.append(f"Crosscoder at layer {layer} ({cc.library}): {cc.latents} latents, k = {cmd.k}, "
                      f"explained variance {cc.explained_variance:.3f}, final loss {cc.losses[-1]:.4f}.")
    conclusion = []
    for f in causal[:3]:
        who = f" ({f['reach']['carrier']})" if f.get("reach") else ""
        conclusion.append(f"Layer {f['layer']} shows a {f['side']} {f['kind']}{who} for `{_best(f)}` "
                          f"({', '.join(repr(t) for t in f['tokens'][:3])}): removing it from ft changes CE by {f['causal']['delta_ce']:+.4f} "
                          f"(z {f['causal']['z']:.1f}) and closes {100 * f['causal']['kl_drop_fraction']:.0f}% of "
                          f"KL(ft||base) (removal z {f['causal']['z_kl']:.1f}); adding it to base closes "
                          f"{100 * f['steering']['kl_drop_fraction']:.0f}% of KL(base||ft) (steering z "
                          f"{f['steering']['z']:.1f}).")
    apart = [f for f in features if not f["causal_effect"] and f["causal"]["z_kl"] < -3]
    if apart:
        conclusion.append("Removing " + ", ".join(f"{f['id']} (removal z {f['causal']['z_kl']:.1f})" for f in apart[:4])
                          + " moves ft further from base than a random direction does: these directions are used by "
                          "both models (or by base more), not added by the fine-tune.")
    if not causal:
        conclusion.append("No feature brings the models together beyond random directions: the differences found "
                          "are not localised in single directions at the layers read.")
    return [("Summary of the differences", summary), ("Feature overview", overview),
            ("Layer-by-layer analysis", layers), ("Conclusion", conclusion)]


def _reading(f: dict) -> str:
    return effect_reading(f["rank_score"], f["causal"]["z_kl"], f["steering"]["z"], f["causal"]["z"])


def sig3(x: float) -> str:
    """A number with 3 significant digits (``0.240``, ``12.3``, ``-0.00102``)."""
    if x != x:
        return "nan"
    if x == 0:
        return "0"
    return f"{float(f'{x:.3g}'):#.3g}".rstrip(".")


def category_table(features: list[dict], categories: list[str]) -> list[str]:
    """Markdown table of each feature's category scores (directions: projection of the category's mean
    difference on the unit vector; latents: firing frequency on the category), 3 significant digits."""
    lines = ["Category scores (directions: projection of each category's mean difference on the feature's unit "
             "vector; latents: firing frequency on the category's positions):", "",
             "| id | kind | " + " | ".join(categories) + " |", "|---" * (len(categories) + 2) + "|"]
    for f in features:
        lines.append(f"| {f['id']} | {f['kind']} | "
                     + " | ".join(sig3(float(f["categories"].get(c, float("nan")))) for c in categories) + " |")
    return lines


def _source(f: dict) -> str:
    if f["kind"] == "latent":
        return f"crosscoder latent {f['latent']}"
    what = "mean difference" if f.get("basis") == "mean" else "category-specific difference"
    return f"{what} on `{f['source_category']}`"


def _best(f: dict) -> str:
    return max(f["categories"], key=lambda c: f["categories"][c])


def write_reports(run, cmd, pair, stats, features, coders, figures: list[tuple[str, str]]) -> None:
    sections = _sections(cmd, pair, stats, features, coders)
    md = ["# modeldiff interpret report", ""]
    for title, lines in sections[:3]:
        md += [f"## {title}", "", *lines, ""]
    md += ["## Figures", ""] + [f"![{cap}]({name})" for name, cap in figures] + [""]
    md += [f"## {sections[3][0]}", "", *sections[3][1], ""]
    artifacts.write_text(run.file(REPORT_MD.path()), "\n".join(md))
    body = ["<h1>modeldiff interpret report</h1>"]
    for title, lines in sections[:3]:
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_html_lines(lines))
    body.append("<h2>Figures</h2>")
    for name, cap in figures:
        data = base64.b64encode(run.file(name).read_bytes()).decode()
        body.append(f'<figure><img alt="{html.escape(cap)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>")
    body.append(f"<h2>{html.escape(sections[3][0])}</h2>")
    body.append(_html_lines(sections[3][1]))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>modeldiff interpret</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    artifacts.write_text(run.file(REPORT_HTML.path()), page)


def _html_lines(lines: list[str]) -> str:
    """The markdown subset the sections use: tables, bullet lines, paragraphs (** and ` rendered)."""
    out, table = [], []

    def inline(text: str) -> str:
        text = html.escape(text)
        parts = text.split("**")
        text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
        parts = text.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "")) <= set("-")]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
            rest = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
            out.append(f"<table><tr>{head}</tr>{rest}</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line:
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "".join(out)
