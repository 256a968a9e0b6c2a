"""interpret: the feature list (names, tokens, categories, the causal score they are ranked by, its removal z and the ablation z) and the command's own report embedded.

Category scores are shown as a small table per feature, 3 significant digits.

Reads the declared features (``{"features": [{id, name, kind, layer, tokens, suppressed, categories, side,
examples, causal, steering, rank_score}]}``) and the command's HTML report (``commands/interpret/artifacts.py``).
"""

from __future__ import annotations

from ...commands.interpret.artifacts import FEATURES, REPORT_HTML
from ...commands.interpret.causal_reading import SIGN_NOTE, effect_reading
from ..finding import num
from ..html import Raw, esc, srcdoc_iframe, table
from ..registry import comparer, headliner, renderer

EMBED_LIMIT = 3_000_000


def _z(causal, keys=("z", "causal_z", "zscore", "z_score")) -> float | None:
    if isinstance(causal, (int, float)) and not isinstance(causal, bool):
        return float(causal) if "z" in keys else None
    if isinstance(causal, dict):
        for key in keys:
            v = causal.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


def _join(v, n: int = 8) -> str:
    if isinstance(v, list):
        return ", ".join(repr(x) if isinstance(x, str) else str(x) for x in v[:n]) + (" …" if len(v) > n else "")
    return "" if v is None else str(v)


def sig3(x) -> str:
    """3 significant digits (``0.240``, ``12.3``)."""
    x = float(x)
    if x != x or x == 0:
        return "nan" if x != x else "0"
    return f"{float(f'{x:.3g}'):#.3g}".rstrip(".")


def categories_cell(cats):
    """A feature's category scores as a small two-row table, 3 significant digits (a list: its names)."""
    if isinstance(cats, dict) and cats:
        nums = {k: v for k, v in cats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if len(nums) == len(cats):
            head = "".join(f"<th>{esc(k)}</th>" for k in nums)
            body = "".join(f'<td class="num">{esc(sig3(v))}</td>' for v in nums.values())
            return Raw(f'<table class="cats"><tr>{head}</tr><tr>{body}</tr></table>')
    return _join(cats)


def _features(run) -> list[dict]:
    data = run.read(FEATURES)
    feats = data.get("features") if isinstance(data, dict) else None
    return [f for f in feats if isinstance(f, dict)] if isinstance(feats, list) else []


def reading(f: dict) -> str:
    """What the feature's z-scores say (``commands.interpret.causal_reading``); empty when a score is missing."""
    score, removal, ablation = _z(f.get("rank_score")), _z(f.get("causal"), ("z_kl",)), _z(f.get("causal"))
    steering = _z(f.get("steering"))
    if None in (score, removal, ablation):
        return ""
    return effect_reading(score, removal, 0.0 if steering is None else steering, ablation)


@renderer("interpret")
def render(run, ctx) -> str:
    feats = _features(run)
    out = []
    if feats:
        rows = [[f.get("id"), f.get("name", ""), f.get("kind", ""), f.get("layer"), f.get("side", ""),
                 _join(f.get("tokens")), _join(f.get("suppressed")), categories_cell(f.get("categories")),
                 _z(f.get("rank_score")), _z(f.get("causal"), ("z_kl",)), _z(f.get("causal")),
                 "yes" if f.get("steering") else "", reading(f)] for f in feats]
        out.append("<h2>Features</h2>" + table(
            ["id", "name", "kind", "layer", "side", "tokens", "suppressed", "categories", "causal score", "removal z", "ablation z",
             "steering", "reading"],
            rows, ctx.ids) + f'<p class="muted">Causal score = (removal z + steering z) / sqrt(2); removal z: the drop '
            f"of KL(ft || base) when the feature is removed from ft; steering z: the drop of KL(base || ft) when it is "
            f"added to base; ablation z: the change of ft's cross-entropy. {esc(SIGN_NOTE)}.</p>")
    text = run.read(REPORT_HTML, limit=EMBED_LIMIT)
    if text is not None:
        out.append("<h2>interpret's report</h2>" + srcdoc_iframe(text, "interpret report"))
    return "".join(out)


@comparer("interpret")
def compare(run) -> dict:
    return {"tokens": [str(f.get("name", f.get("id"))) for f in _features(run)[:20]], "title": "features"}


@headliner("interpret")
def finding(run) -> list[tuple[str, str]]:
    """The top feature (name, causal score), where the difference peaks, and how many features are causal."""
    h, out = run.headline, []
    top = h.get("top_features") or []
    if top and isinstance(top[0], dict):
        f = top[0]
        out.append(("top feature", f"{f.get('id', '')} {f.get('name', '')}: causal score {num(f.get('causal_score'))}"
                    f" (removal z {num(f.get('z_kl'))})".strip()))
    if h.get("peak_layer") is not None:
        out.append(("largest difference", f"layer {h['peak_layer']}, category {h.get('peak_category', '?')} "
                    f"(relative norm {num(h.get('peak_relative_norm'))})"))
    if isinstance(h.get("features"), int) and isinstance(h.get("causal_features"), int):
        out.append(("causal features", f"{h['causal_features']} of {h['features']}"))
    return out
