"""Self-contained HTML view of one prompt's attribution: heat map (rows: input tokens, columns: generated
tokens), values on hover, and base / fine-tuned / diff tabs in diff mode. Inline CSS and JS, no network."""

from __future__ import annotations

import html as _html
import json

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.1em}.meta{color:#555;font-size:.85em;margin-bottom:.8em}
.tabs button{border:1px solid #999;background:#eee;padding:.3em .9em;cursor:pointer;margin-right:.2em}
.tabs button.on{background:#333;color:#fff}
table{border-collapse:collapse;margin-top:.6em;font-family:ui-monospace,monospace;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:center;min-width:2.6em;white-space:pre}
th.row{text-align:right;background:#f6f6f6}th.col{background:#f6f6f6;vertical-align:bottom}
td.na{background:#fafafa;color:#ccc}.gen{color:#0a5}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:4px 7px;border-radius:3px;
font-size:12px;display:none;white-space:pre}
"""

_JS = """
const D = JSON.parse(document.getElementById('tokenlens-data').textContent);
const tip = document.getElementById('tip');
// a token as a label: newline/tab/CR and other control characters escaped, leading/trailing spaces as ␣ (a
// whitespace token would otherwise be a blank label), the empty token as ∅; esc() is applied after this
function vis(s){
  s = s.replace(/\\n/g,'\\\\n').replace(/\\t/g,'\\\\t').replace(/\\r/g,'\\\\r')
       .replace(/[\\u0000-\\u001f\\u007f]/g, c=>'\\\\x'+c.charCodeAt(0).toString(16).padStart(2,'0'));
  return s === '' ? '∅' : s.replace(/^ +| +$/g, m=>'␣'.repeat(m.length));
}
function colour(v, lim, diverging){
  if(v===null) return '';
  const a = Math.min(1, Math.abs(v)/(lim||1));
  if(diverging) return v>=0 ? `rgba(200,30,30,${a})` : `rgba(30,80,200,${a})`;
  return `rgba(220,90,20,${a})`;
}
function draw(name){
  const view = D.views[name];
  const M = view.normalized, R = view.raw, diverging = view.diverging;
  let lim = 0; M.forEach(r=>r.forEach(v=>{if(v!==null) lim=Math.max(lim,Math.abs(v));}));
  let h = '<table><tr><th></th>' + D.output_tokens.map((t,j)=>`<th class="col">${esc(vis(t))}</th>`).join('') + '</tr>';
  M.forEach((row,i)=>{
    h += `<tr><th class="row${i>=D.prompt_length?' gen':''}">${esc(vis(D.input_tokens[i]))}</th>`;
    row.forEach((v,j)=>{
      if(v===null){h += '<td class="na">·</td>'; return;}
      h += `<td style="background:${colour(v,lim,diverging)}" data-i="${i}" data-j="${j}" data-v="${v}" data-r="${R[i][j]}">${v.toFixed(2)}</td>`;
    });
    h += '</tr>';
  });
  document.getElementById('map').innerHTML = h + '</table>';
  document.querySelectorAll('.tabs button').forEach(b=>b.classList.toggle('on', b.dataset.view===name));
}
function esc(s){return s.replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
document.addEventListener('mousemove', e=>{
  const c = e.target.closest('td[data-v]');
  if(!c){tip.style.display='none';return;}
  const i=+c.dataset.i, j=+c.dataset.j;
  tip.textContent = `${vis(D.input_tokens[i])} -> ${vis(D.output_tokens[j])}\\nnormalized ${(+c.dataset.v).toPrecision(4)}\\nraw ${(+c.dataset.r).toPrecision(4)}`;
  tip.style.left=(e.clientX+12)+'px'; tip.style.top=(e.clientY+12)+'px'; tip.style.display='block';
});
document.querySelectorAll('.tabs button').forEach(b=>b.onclick=()=>draw(b.dataset.view));
draw(D.first);
"""


def render(rec: dict) -> str:
    """HTML page for one per-prompt record (see output.record); the data is embedded as JSON."""
    data, meta = rec["data"], rec["metadata"]
    views = {"model": {"label": meta["llm_id"], "raw": data["association_matrix"],
                       "normalized": data["normalized_association"], "diverging": False}}
    if "compare" in data:
        views = {
            "ft": {**views["model"], "label": f"ft: {meta['llm_id']}"},
            "base": {"label": f"base: {data['compare']['llm_id']}", "raw": data["compare"]["association_matrix"],
                     "normalized": data["compare"]["normalized_association"], "diverging": False},
            "diff": {"label": "diff (ft - base)", "raw": data["diff"]["association_matrix"],
                     "normalized": data["diff"]["normalized_association"], "diverging": True},
        }
    payload = {"input_tokens": data["input_tokens"], "output_tokens": data["output_tokens"],
               "prompt_length": data["prompt_length"], "views": views, "first": next(iter(views))}
    blob = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")
    tabs = "".join(f'<button data-view="{k}">{_html.escape(v["label"])}</button>' for k, v in views.items())
    gp = _html.escape(json.dumps(meta.get("generation_params", {})))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tokenlens: {_html.escape(meta['attribution_method'])}</title>
<style>{_CSS}</style></head><body>
<h1>tokenlens · {_html.escape(meta['attribution_method'])} · {_html.escape(str(meta['llm_id']))}</h1>
<div class="meta">prompt: {_html.escape(meta['prompt'])}<br>generation: {gp} · rows: input tokens (generated ones in
green), columns: generated tokens; cells: attribution normalised per column (hover for raw values); · = token not
yet in the prefix; ␣ = a space at the start or end of a token</div>
<div class="tabs">{tabs}</div><div id="map"></div><div id="tip"></div>
<script type="application/json" id="tokenlens-data">{blob}</script>
<script>{_JS}</script></body></html>
"""
