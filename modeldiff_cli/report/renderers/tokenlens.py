"""tokenlens: each prompt's own heatmap view (its base / ft / diff tabs) embedded, with a prompt picker."""

from __future__ import annotations

from ...commands.tokenlens.artifacts import PROMPT_HTML, PROMPTS, prompt_index
from ..finding import num, token
from ..html import esc, srcdoc_iframe, table
from ..registry import headliner, renderer

EMBED_LIMIT = 1_500_000  # bytes of one prompt's HTML view embedded; past it the page links the file
MAX_EMBEDDED = 40


@renderer("tokenlens")
def render(run, ctx) -> str:
    prompts = [p for p in run.read(PROMPTS) or [] if isinstance(p, dict)]
    # each attributed prompt's heat map (a failed prompt has none), in prompt order
    views = [(prompt_index(p["index"]), p) for p in prompts if p.get("status") == "ok"]
    out = []
    if prompts:
        rows = [[p["index"], p["prompt"], p["status"], p.get("generated", ""), p.get("seconds")] for p in prompts]
        out.append("<h2>Prompts</h2>" + table(["#", "prompt", "status", "generated", "seconds"], rows, ctx.ids))
    if views:
        out.append('<h2>Heatmap per prompt</h2><label>prompt: <select class="picker">')
        panels = []
        for i, (index, p) in enumerate(views):
            pid = ctx.ids("prompt")
            name = PROMPT_HTML.path(index=index)
            label = f"{name}: {str(p['prompt'])[:60]}"
            out.append(f'<option value="{pid}">{esc(label)}</option>')
            text = run.read(PROMPT_HTML, limit=EMBED_LIMIT, index=index) if i < MAX_EMBEDDED else None
            if text is None:
                body = f'<p><a href="{esc(ctx.link(name))}">{esc(name)}</a> (not embedded: large or unreadable)</p>'
            else:
                body = srcdoc_iframe(text, name)
            panels.append(f'<div id="{pid}">{body}</div>')
        out.append("</select></label>" + "".join(panels))
    return "".join(out)


@headliner("tokenlens")
def finding(run) -> list[tuple[str, str]]:
    """The method and, per prompt (the first three), the generated text and its most important input token."""
    h, out = run.headline, []
    if h.get("method"):
        out.append(("method", f"{h['method']}: {num(h.get('succeeded'))} prompts attributed, {num(h.get('failed'))} failed"))
    for p in [p for p in h.get("prompts") or [] if isinstance(p, dict) and p.get("status") == "ok"][:3]:
        out.append((f"prompt {p.get('index')}", f"{token(p.get('generated', ''))} mostly from "
                    f"{token(p.get('top_input_token', ''))} ({num(p.get('top_input_score'))})"))
    return out
