"""info: the pair's facts side by side (``info.json``: both models' description, the tokenizer relation,
shared vocabulary, notes and the verdict). :func:`pair_facts` is also the index's header of the pair."""

from __future__ import annotations

from ...commands.info_artifacts import INFO
from ..html import esc, fmt
from ..registry import headliner, renderer

# (label, key in each side's description) shown in the index's header of the pair
INDEX_FACTS = (("architecture", "architecture"), ("layers", "layers"), ("hidden size", "hidden_size"),
               ("vocabulary (embedding rows)", "vocab_size"), ("tokenizer size", "tokenizer_size"),
               ("parameters", "parameters"), ("dtype", "dtype"), ("MoE routers", "moe_routers"))


def load(run) -> dict | None:
    data = run.read(INFO)
    if not isinstance(data, dict) or not isinstance(data.get("base"), dict) or not isinstance(data.get("ft"), dict):
        if data is not None:
            run.warn(f"{INFO.path()}: expected {{'base': {{...}}, 'ft': {{...}}, ...}}")
        return None
    return data


def _value(v) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
        return f"{v:,}"
    return fmt(v)


def facts_table(data: dict, keys: tuple[tuple[str, str], ...] | None = None) -> str:
    """base / ft columns, one row per fact; a row whose sides differ is marked."""
    base, ft = data["base"], data["ft"]
    tok = data.get("tokenizer_class") if isinstance(data.get("tokenizer_class"), dict) else {}
    rows = list(keys) if keys is not None else [(k, k) for k in base]
    out = ['<table class="facts"><thead><tr><th></th><th>base</th><th>ft</th></tr></thead><tbody>']
    for label, key in rows:
        a, b = base.get(key), ft.get(key)
        if key == "tokenizer_size" and tok:
            a, b = f"{tok.get('base', '?')} ({_value(a)})", f"{tok.get('ft', '?')} ({_value(b)})"
        else:
            a, b = _value(a), _value(b)
        cls = ' class="differs"' if a != b else ""
        out.append(f"<tr{cls}><th>{esc(label)}</th><td>{esc(a)}</td><td>{esc(b)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def verdict(data: dict) -> str:
    rel, shared = data.get("tokenizer_relation", "?"), data.get("shared_vocab", "?")
    ok = "compatible" if data.get("compatible") else "cannot be diffed: " + "; ".join(map(str, data.get("reasons") or []))
    notes = "".join(f" · note: {esc(n)}" for n in data.get("notes") or [])
    return f"tokenizers: <b>{esc(rel)}</b> (shared ids: {esc(_value(shared))}) · {esc(ok)}{notes}"


def pair_facts(run, href: str) -> str:
    """The index's header of a pair with an info run: the main facts and a link to the run's page."""
    data = load(run)
    if data is None:
        return ""
    return (f'<div class="pairfacts">{facts_table(data, INDEX_FACTS)}<p class="muted">{verdict(data)} · '
            f'from <a href="{esc(href)}">info</a></p></div>')


@renderer("info")
def render(run, ctx) -> str:
    data = load(run)
    if data is None:
        return ""
    return f"<h2>The pair</h2><p>{verdict(data)}</p>" + facts_table(data)


@headliner("info")
def finding(run) -> list[tuple[str, str]]:
    """Whether the pair can be diffed, its architecture and the tokenizer relation."""
    h, out = run.headline, []
    if "compatible" in h:
        out.append(("compatible", "yes" if h["compatible"] else "no"))
    if h.get("architecture"):
        out.append(("architecture", f"{h['architecture']}, {h.get('layers', '?')} layers"))
    if h.get("tokenizer_relation"):
        out.append(("tokenizers", f"{h['tokenizer_relation']} (shared ids: {fmt(h.get('shared_vocab'))})"))
    return out
