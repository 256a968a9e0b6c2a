"""Page pieces: the shared style and script (inline), sortable/filterable tables, JSON data islands, and
writing a file only when its bytes changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#22313f;color:#fff;padding:.6em 1.2em}header a{color:#cde}
main{padding:.6em 1.2em 3em}h1{font-size:1.25em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}
h3{font-size:1em;margin:1em 0 .3em}.muted{color:#666;font-size:.85em}
.warn{background:#fff3cd;border:1px solid #e0b000;color:#5c4400;padding:.5em .8em;margin:.6em 0;border-radius:4px}
table.data{border-collapse:collapse;font-size:12.5px;background:#fff;margin:.3em 0}
table.data th,table.data td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
table.data th{background:#eef1f4;cursor:pointer;user-select:none;white-space:nowrap}
table.data th.asc::after{content:" \\25B2"}table.data th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.tok{font-family:ui-monospace,monospace;white-space:pre}
input.tfilter,#filter{margin:.3em 0;padding:3px 6px;font-size:12.5px;width:18em}
.grid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.grid>div{background:#fff;padding:4px}
svg.chart{border:1px solid #e3e3e3;max-width:100%;height:auto}
.side{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}.side>div{background:#fff;border:1px solid #ddd;padding:6px 10px;min-width:14em}
.shared{background:#d7ecff;font-weight:600}
iframe.embed{width:100%;height:560px;border:1px solid #ccc;background:#fff}
details{margin:.4em 0}pre.json{background:#fff;border:1px solid #ddd;padding:.5em;max-height:24em;overflow:auto;font-size:12px}
.tabs button{border:1px solid #999;background:#eee;padding:.25em .8em;cursor:pointer;margin-right:.2em}
.tabs button.on{background:#22313f;color:#fff}
.tablewrap{max-width:100%;overflow-x:auto}.stack{display:flex;flex-direction:column;gap:10px}
table.facts{border-collapse:collapse;font-size:12.5px;background:#fff;margin:.2em 0}
table.facts th,table.facts td{border:1px solid #e3e3e3;padding:2px 8px;text-align:left}
table.facts thead th{background:#eef1f4}table.facts tbody th{font-weight:500;color:#444}
table.facts tr.differs td{background:#fff3cd}
"""

# first script of every page: records script errors (a test, or a reader, can see what failed)
ERRORS_JS = ("window.modeldiffErrors=[];window.addEventListener('error',function(e){"
             "window.modeldiffErrors.push(String(e.message||e));});")

JS = r"""
(function(){
function cellVal(td){var t=td.getAttribute('data-v');if(t===null)t=td.textContent;var n=parseFloat(t);
  return (t.trim()!==''&&isFinite(n)&&/^\s*[-+]?[\d.]/.test(t))?n:t.toLowerCase();}
function sortTable(th){var table=th.closest('table'),idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=!th.classList.contains('asc');table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
  th.classList.add(asc?'asc':'desc');var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=cellVal(a.cells[idx]),y=cellVal(b.cells[idx]);
    if(typeof x===typeof y)return (x<y?-1:x>y?1:0)*(asc?1:-1);return (typeof x==='number'?-1:1)*(asc?1:-1);});
  rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll('table.data th').forEach(function(th){th.addEventListener('click',function(){sortTable(th);});});
document.querySelectorAll('input.tfilter').forEach(function(inp){inp.addEventListener('input',function(){
  var q=inp.value.toLowerCase(),t=document.getElementById(inp.getAttribute('data-for'));
  Array.prototype.forEach.call(t.tBodies[0].rows,function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});});
document.querySelectorAll('.tabs').forEach(function(tabs){var bs=tabs.querySelectorAll('button');
  function show(b){bs.forEach(function(o){o.classList.toggle('on',o===b);var p=document.getElementById(o.getAttribute('data-panel'));
    if(p)p.style.display=(o===b)?'':'none';});}
  bs.forEach(function(b){b.addEventListener('click',function(){show(b);});});if(bs.length)show(bs[0]);});
document.querySelectorAll('select.picker').forEach(function(sel){function show(){Array.prototype.forEach.call(sel.options,function(o){
  var p=document.getElementById(o.value);if(p)p.style.display=(o.selected?'':'none');});}
  sel.addEventListener('change',show);show();});
window.modeldiffReady=true;
})();
"""


def esc(value) -> str:
    return escape(str(value), quote=True)


def fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def json_script(element_id: str, obj) -> str:
    """Data embedded as a JSON island (read by inline scripts; no fetch of local files)."""
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


class Ids:
    """Element ids unique within one page."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, stem: str) -> str:
        self.n += 1
        return f"{stem}-{self.n}"


def table(columns: Sequence[str], rows: Sequence[Sequence], ids: Ids, *, token_cols: Sequence[int] = (),
          caption: str = "", filterable: bool = True, limit: int = 300, row_classes: Sequence[str] | None = None) -> str:
    """A sortable table (click a header); a filter box above it when ``filterable``."""
    tid = ids("t")
    out = []
    if caption:
        out.append(f'<div class="muted">{esc(caption)}</div>')
    if filterable:
        out.append(f'<input class="tfilter" data-for="{tid}" placeholder="filter rows" aria-label="filter rows">')
    out.append(f'<div class="tablewrap"><table class="data" id="{tid}"><thead><tr>')
    out.extend(f"<th>{esc(c)}</th>" for c in columns)
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows[:limit]):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>")
        for j, v in enumerate(row):
            if j in token_cols:
                out.append(f'<td class="tok">{esc(repr(str(v))[1:-1])}</td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(f'<td class="num" data-v="{v!r}">{esc(fmt(v))}</td>')
            elif isinstance(v, Raw):
                out.append(f"<td>{v.html}</td>")
            else:
                out.append(f"<td>{esc(fmt(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")  # a wide table scrolls inside its box, not the page
    if len(rows) > limit:
        out.append(f'<div class="muted">first {limit} of {len(rows)} rows (the full table is in the run directory)</div>')
    return "".join(out)


class Raw:
    """Trusted HTML inside a table cell."""

    def __init__(self, html: str) -> None:
        self.html = html


def page(title: str, body: str, *, crumbs: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><script>{ERRORS_JS}</script><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1>{crumbs}</header><main>{body}</main>'
        f"<script>{JS}</script></body></html>\n"
    )


def srcdoc_iframe(html_text: str, title: str) -> str:
    return f'<iframe class="embed" title="{esc(title)}" srcdoc="{escape(html_text, quote=True)}"></iframe>'


def write_if_changed(path: Path, data: str | bytes) -> bool:
    """Write ``data`` unless the file already holds exactly these bytes (content hash); True if written."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(blob):
        if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(blob).digest():
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return True
