"""The page every run gets: headline, configuration, artifacts (the whole page of a command without renderer)."""

from __future__ import annotations

import json

from ..html import Raw, esc, fmt, table


def headline_items(headline: dict, limit: int = 6) -> list[tuple[str, str]]:
    """Scalar headline figures (and short lists) for the index and the comparison view."""
    out = []
    for k, v in headline.items():
        if isinstance(v, (int, float, str, bool)) and not isinstance(v, bool) or v is None:
            out.append((k, fmt(v)))
        elif isinstance(v, list) and v and all(isinstance(x, (str, int, float)) for x in v) and len(v) <= 12:
            out.append((k, ", ".join(repr(x) if isinstance(x, str) else fmt(x) for x in v[:5]) + (" …" if len(v) > 5 else "")))
        if len(out) >= limit:
            break
    return out


def flat_numbers(obj, prefix: str = "", out: dict | None = None, depth: int = 0) -> dict:
    """Numeric leaves of a nested headline as ``a.b.c`` -> value (for comparing runs)."""
    out = {} if out is None else out
    if depth > 4 or len(out) > 60:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            flat_numbers(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj
    return out


def summary_section(run, ctx) -> str:
    s = run.summary or {}
    parts = ["<h2>Headline</h2>"]
    lines = s.get("lines")
    if isinstance(lines, list) and lines:
        parts.append('<pre class="json">' + esc("\n".join(str(x) for x in lines)) + "</pre>")
    nums = flat_numbers(run.headline)
    if nums:
        parts.append(table(["figure", "value"], [[k, v] for k, v in nums.items()], ctx.ids, filterable=False))
    parts.append("<details><summary>headline (JSON)</summary><pre class=\"json\">"
                 + esc(json.dumps(run.headline, indent=1)[:20000]) + "</pre></details>")
    cfg = s.get("config")
    if cfg:
        parts.append("<details><summary>configuration</summary><pre class=\"json\">"
                     + esc(json.dumps(cfg, indent=1)[:20000]) + "</pre></details>")
    return "".join(parts)


def artifacts_section(run, ctx) -> str:
    rows = []
    for a in run.artifacts:
        path = str(a["path"])
        exists = (run.path / path).exists()
        link = Raw(f'<a href="{esc(ctx.link(path))}">{esc(path)}</a>' if exists else f"{esc(path)} (missing)")
        rows.append([link, a.get("kind", ""), a.get("bytes", 0) or 0, a.get("description", "")])
    if not rows:
        names = sorted(p.name for p in run.path.iterdir()) if run.path.is_dir() else []
        rows = [[Raw(f'<a href="{esc(ctx.link(n))}">{esc(n)}</a>'), "", 0, "(not listed in summary.json)"] for n in names]
    return "<h2>Artifacts</h2>" + table(["path", "kind", "bytes", "description"], rows, ctx.ids)
