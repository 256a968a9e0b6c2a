"""Building the report: scan the paths, render one page per run, the index and the comparison pages, and
write only the files whose bytes changed."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .finding import plural
from .html import Ids, Raw, esc, json_script, page, table, write_if_changed
from .renderers.generic import artifacts_section, flat_numbers, headline_items, summary_section
from .renderers.info import pair_facts
from .runs import Run, scan

COPY_LIMIT = 1_000_000  # artifacts up to this many bytes are copied into the report; larger ones are linked
FACT_KEYS = ("tokenizer_relation", "shared_vocab", "n_layers", "moe_layers", "experts", "top_k")


@dataclass
class ReportResult:
    out: Path
    index: Path
    runs: list[Run]
    partial: list[Path]
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: int = 0

    @property
    def warnings(self) -> int:
        return sum(1 for r in self.runs if r.warnings)


class _Writer:
    def __init__(self, result: ReportResult) -> None:
        self.result = result
        self.keep: set[Path] = set()

    def write(self, path: Path, text: str) -> None:
        self.keep.add(path)
        if write_if_changed(path, text):
            self.result.written.append(path)
        else:
            self.result.unchanged += 1

    def copy(self, src: Path, dst: Path) -> None:
        self.keep.add(dst)
        s = src.stat()
        if dst.is_file():
            d = dst.stat()
            if d.st_size == s.st_size and d.st_mtime_ns == s.st_mtime_ns:
                self.result.unchanged += 1
                return
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        self.result.written.append(dst)


def _linker(run: Run, out: Path, writer: _Writer, copy_limit: int):
    pages_dir = out / "runs"

    def link(name: str) -> str:
        src = run.path / name
        try:
            inside = src.resolve().is_relative_to(run.path.resolve())
        except OSError:
            inside = False
        if inside and src.is_file() and src.stat().st_size <= copy_limit:
            writer.copy(src, out / "files" / run.id / name)
            return f"../files/{run.id}/{name}"
        return Path(os.path.relpath(src.resolve(), pages_dir.resolve())).as_posix()

    return link


def _facts(runs: list[Run]) -> dict:
    facts: dict = {}
    for r in runs:
        for src in ((r.summary or {}).get("metadata") or {}, r.headline):
            if isinstance(src, dict):
                for k in FACT_KEYS:
                    if k in src and k not in facts and isinstance(src[k], (int, float, str, list)):
                        facts[k] = src[k]
    return facts


def render_run(run: Run, ctx: registry.Ctx) -> str:
    """The page of one run: warnings, the command's own sections (or none), headline, artifacts."""
    registry.load_all()
    fn = registry.RENDERERS.get(run.command)
    body = ""
    if fn is not None and run.summary is not None:
        try:
            body = fn(run, ctx)
        except Exception as err:  # one broken artifact must not take the report down
            run.warn(f"the {run.command} renderer failed: {type(err).__name__}: {err}")
    elif fn is None:
        body = f'<p class="muted">no renderer for command {esc(run.command)!s}: generic page</p>'
    rest = summary_section(run, ctx) + artifacts_section(run, ctx)
    warn = "".join(f'<div class="warn">&#9888; {esc(w)}</div>' for w in run.warnings)
    meta = (f'<p class="muted">{esc(run.command)} · {esc(run.models)} · data {esc(run.datasets)} · '
            f"<code>{esc(run.path)}</code></p>")
    return page(f"{run.command}: {run.models} / {run.name}", meta + warn + body + rest,
                crumbs='<a href="../index.html">&larr; all runs</a>')


def headline_finding(run: Run) -> list[tuple[str, str]]:
    """The index's headline column: the command's finding (its ``@headliner``), else its first scalar figures."""
    registry.load_all()
    fn = registry.HEADLINERS.get(run.command)
    if fn is not None and run.summary is not None:
        try:
            items = fn(run)
        except Exception as err:  # a malformed headline: the generic figures, and a warning
            run.warn(f"the {run.command} headline failed: {type(err).__name__}: {err}")
            items = []
        if items:
            return items
    return headline_items(run.headline)


def _headline_html(run: Run) -> Raw:
    items = headline_finding(run)
    return Raw("<br>".join(f"<b>{esc(k)}</b>: {esc(v)}" for k, v in items) or "&mdash;")


def render_index(runs: list[Run], partial: list[Path], ids: Ids) -> str:
    commands = sorted({r.command for r in runs})
    by_pair: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_pair[r.models].append(r)
    out = [f'<p class="muted">{plural(len(runs), "run")} over {plural(len(by_pair), "model pair / model", "model pairs / models")}. '
           "Click a column to sort; tick two or more runs of one command and press compare.</p>",
           '<div><input id="filter" placeholder="filter: command, model or dataset" aria-label="filter runs"> '
           '<select id="cmd" aria-label="command"><option value="">every command</option>'
           + "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in commands) + "</select> "
           '<button id="compare">compare selected</button> <span id="cmpmsg" class="muted"></span></div>']
    multi = [c for c in commands if sum(r.command == c for r in runs) > 1]
    if multi:
        out.append('<p>Compare all runs of: ' + " · ".join(f'<a href="compare-{esc(c)}.html">{esc(c)}</a>' for c in multi) + "</p>")
    if partial:
        out.append('<div class="warn">Skipped partial (unfinished) run directories:<ul>'
                   + "".join(f"<li><code>{esc(p)}</code></li>" for p in partial) + "</ul></div>")
    for pair, group in by_pair.items():
        group.sort(key=lambda r: (r.command, r.datasets, r.name))
        out.append(f'<section class="pair"><h2>{esc(pair)}</h2>')
        header = ""
        for r in (r for r in group if r.command == "info" and r.summary is not None):
            header = pair_facts(r, f"runs/{r.id}.html")
            if header:
                break
        facts = _facts(group)
        if header:
            out.append(header)
        elif facts:
            out.append('<p class="muted">' + " · ".join(f"{esc(k)}: {esc(v)}" for k, v in facts.items())
                       + ' · run <code>modeldiff info</code> on the pair for its architecture facts</p>')
        rows, classes = [], []
        for r in group:
            box = Raw(f'<input type="checkbox" class="pick" value="{esc(r.id)}" data-command="{esc(r.command)}" '
                      f'aria-label="select {esc(r.id)}">')
            link = Raw(f'<a href="runs/{esc(r.id)}.html">{esc(r.name)}</a>')
            headline = _headline_html(r)  # first: a headline that fails to read adds a warning
            warn = "⚠ " + "; ".join(r.warnings) if r.warnings else ""
            rows.append([box, r.command, r.datasets, link, headline, warn])
            classes.append("runrow")
        html = table(["", "command", "dataset", "run", "headline", "warnings"], rows, ids, filterable=False,
                     limit=100000, row_classes=classes)
        # data-search drives the global filter box (command, model, dataset)
        for r in group:
            html = html.replace('<tr class="runrow">', f'<tr class="runrow" data-command="{esc(r.command)}" '
                                f'data-search="{esc((r.command + " " + r.models + " " + r.datasets + " " + r.name).lower())}">', 1)
        out.append(html + "</section>")
    out.append(f"<script>{INDEX_JS}</script>")
    return page("modeldiff report", "".join(out))


INDEX_JS = r"""
(function(){var f=document.getElementById('filter'),c=document.getElementById('cmd');
function apply(){var q=f.value.toLowerCase().trim(),cmd=c.value;
  document.querySelectorAll('tr.runrow').forEach(function(r){var ok=(!q||r.getAttribute('data-search').indexOf(q)>=0)&&
    (!cmd||r.getAttribute('data-command')===cmd);r.style.display=ok?'':'none';});
  document.querySelectorAll('section.pair').forEach(function(s){s.style.display=s.querySelector('tr.runrow:not([style*="none"])')?'':'none';});}
f.addEventListener('input',apply);c.addEventListener('change',apply);
document.getElementById('compare').addEventListener('click',function(){
  var picked=Array.prototype.filter.call(document.querySelectorAll('input.pick'),function(b){return b.checked;});
  var cmds={};picked.forEach(function(b){cmds[b.getAttribute('data-command')]=1;});var names=Object.keys(cmds);
  var msg=document.getElementById('cmpmsg');
  if(picked.length<2||names.length!==1){msg.textContent='tick two or more runs of the same command';return;}
  location.href='compare-'+names[0]+'.html#'+picked.map(function(b){return encodeURIComponent(b.value);}).join(',');});
})();
"""

COMPARE_JS = r"""
(function(){var all=JSON.parse(document.getElementById('runs-data').textContent);
var C=['#0072B2','#E69F00','#009E73','#CC79A7','#56B4E9','#D55E00','#F0E442','#000000'],D=['','6 3','2 2','8 3 2 3'];
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function chart(series,title,xl,yl){var n=series.length,W=620,H=320+14*n,L=60,R=16,T=34+14*n,B=44,xs=[],ys=[];
  series.forEach(function(s){s.x.forEach(function(v,i){var y=s.y[i];if(isFinite(v)&&y!==null&&isFinite(y)){xs.push(+v);ys.push(+y);}});});
  if(!xs.length)return '<p class="muted">'+esc(title)+': no values</p>';
  var x0=Math.min.apply(null,xs),x1=Math.max.apply(null,xs),y0=Math.min.apply(null,ys),y1=Math.max.apply(null,ys);
  if(x0===x1){x0-=.5;x1+=.5;}var pos=y0>=0;if(y0===y1){y0-=.5;y1+=.5;}var pad=(y1-y0)*.06;y0=pos?0:y0-pad;y1+=pad;
  var pw=W-L-R,ph=H-T-B;function sx(x){return L+(x-x0)/(x1-x0)*pw;}function sy(y){return T+ph-(y-y0)/(y1-y0)*ph;}
  var o='<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '+W+' '+H+'" width="'+W+'" height="'+H+'"><rect width="'+W+'" height="'+H+'" fill="#fff"/>';
  o+='<text x="'+W/2+'" y="18" text-anchor="middle" font-size="13" font-weight="600">'+esc(title)+'</text>';
  o+='<text x="'+(L+pw/2)+'" y="'+(H-6)+'" text-anchor="middle" font-size="11">'+esc(xl)+'</text>';
  o+='<text transform="translate(13 '+(T+ph/2)+') rotate(-90)" text-anchor="middle" font-size="11">'+esc(yl)+'</text>';
  o+='<rect x="'+L+'" y="'+T+'" width="'+pw+'" height="'+ph+'" fill="none" stroke="#999"/>';
  for(var k=0;k<=4;k++){var yv=y0+(y1-y0)*k/4;o+='<text x="'+(L-4)+'" y="'+(sy(yv)+4)+'" text-anchor="end" font-size="10">'+yv.toPrecision(3)+'</text>';}
  var ux={};xs.forEach(function(v){ux[v]=1;});var xt=Object.keys(ux).map(Number).sort(function(a,b){return a-b;});
  var st=Math.max(1,Math.ceil(xt.length/16));xt.filter(function(_,i){return i%st===0;}).forEach(function(v){
    o+='<text x="'+sx(v)+'" y="'+(T+ph+14)+'" text-anchor="middle" font-size="10">'+v+'</text>';});
  series.forEach(function(s,i){var pts=[];s.x.forEach(function(v,j){var y=s.y[j];if(y!==null&&isFinite(y))pts.push(sx(+v).toFixed(1)+','+sy(+y).toFixed(1));});
    o+='<polyline class="series" fill="none" stroke="'+C[i%8]+'" stroke-width="2" stroke-dasharray="'+D[i%4]+'" points="'+pts.join(' ')+'"><title>'+esc(s.label)+'</title></polyline>';
    o+='<line x1="'+L+'" x2="'+(L+20)+'" y1="'+(28+i*14)+'" y2="'+(28+i*14)+'" stroke="'+C[i%8]+'" stroke-width="2" stroke-dasharray="'+D[i%4]+'"/><text x="'+(L+24)+'" y="'+(32+i*14)+'" font-size="10">'+esc(s.label)+'</text>';});
  return o+'</svg>';}
function render(){var want=decodeURIComponent(location.hash.slice(1)).split(',').filter(Boolean);
  var runs=all.filter(function(r){return !want.length||want.indexOf(r.id)>=0;});
  document.querySelectorAll('input.cmp').forEach(function(b){b.checked=runs.some(function(r){return r.id===b.value;});});
  var out='<p class="muted">'+runs.length+' runs side by side</p><div class="side">';
  var count={};runs.forEach(function(r){(r.cmp.tokens||[]).forEach(function(t){count[t]=(count[t]||0)+1;});});
  runs.forEach(function(r){out+='<div class="cmprun" data-id="'+esc(r.id)+'"><b><a href="'+esc(r.href)+'">'+esc(r.label)+'</a></b><br><span class="muted">'+esc(r.models)+' · '+esc(r.dataset)+'</span>';
    if(r.cmp.tokens&&r.cmp.tokens.length){out+='<div class="muted">'+esc(r.cmp.title||'top tokens')+' (shared ones highlighted)</div><table class="data"><tbody>';
      r.cmp.tokens.forEach(function(t,i){out+='<tr'+(count[t]>1&&runs.length>1?' class="shared"':'')+'><td>'+(i+1)+'</td><td class="tok">'+esc(JSON.stringify(t).slice(1,-1))+'</td></tr>';});out+='</tbody></table>';}
    out+='</div>';});out+='</div>';
  var curves={};runs.forEach(function(r){var c=r.cmp.curves||{};Object.keys(c).forEach(function(name){
    (curves[name]=curves[name]||[]).push({label:r.label+(Object.keys(c).length>1?' · '+name:''),x:c[name][0],y:c[name][1]});});});
  var names=Object.keys(curves);if(names.length){out+='<h2>Curves</h2><div class="grid">';
    if(names.length>6){var merged=[];names.forEach(function(n){merged=merged.concat(curves[n]);});curves={'all':merged};names=['all'];}
    names.forEach(function(n){var r0=runs[0].cmp;out+='<div>'+chart(curves[n],n+': '+runs.length+' runs',r0.xlabel||'layer',r0.ylabel||n)+'</div>';});out+='</div>';}
  var keys=[];runs.forEach(function(r){Object.keys(r.numbers).forEach(function(k){if(keys.indexOf(k)<0)keys.push(k);});});
  if(keys.length){out+='<h2>Headline figures</h2><table class="data" id="cmp-numbers"><thead><tr><th>figure</th>';
    runs.forEach(function(r){out+='<th>'+esc(r.label)+'</th>';});out+='</tr></thead><tbody>';
    keys.slice(0,80).forEach(function(k){out+='<tr><td>'+esc(k)+'</td>';runs.forEach(function(r){var v=r.numbers[k];
      out+='<td class="num">'+(v===undefined?'':esc(typeof v==='number'?v.toPrecision(4):v))+'</td>';});out+='</tr>';});out+='</tbody></table>';}
  document.getElementById('view').innerHTML=out;}
document.querySelectorAll('input.cmp').forEach(function(b){b.addEventListener('change',function(){
  var ids=Array.prototype.filter.call(document.querySelectorAll('input.cmp'),function(x){return x.checked;}).map(function(x){return x.value;});
  location.hash=ids.join(',');});});
window.addEventListener('hashchange',render);render();})();
"""


def render_compare(command: str, runs: list[Run]) -> str:
    registry.load_all()
    fn = registry.COMPARERS.get(command)
    data = []
    for r in runs:
        cmp: dict = {}
        if fn is not None and r.summary is not None:
            try:
                cmp = fn(r) or {}
            except Exception as err:
                r.warn(f"the {command} comparison failed: {type(err).__name__}: {err}")
        data.append({"id": r.id, "label": f"{r.models} / {r.name}", "models": r.models, "dataset": r.datasets,
                     "href": f"runs/{r.id}.html", "numbers": flat_numbers(r.headline), "cmp": cmp})
    picker = "".join(f'<label><input type="checkbox" class="cmp" value="{esc(r.id)}"> {esc(r.models)} / {esc(r.name)}</label><br>'
                     for r in runs)
    body = (f'<details open><summary>runs of {esc(command)}</summary>{picker}</details><div id="view"></div>'
            + json_script("runs-data", data) + f"<script>{COMPARE_JS}</script>")
    return page(f"compare {command} runs", body, crumbs='<a href="index.html">&larr; all runs</a>')


def build_report(paths: list[Path], out: Path, copy_limit: int = COPY_LIMIT) -> ReportResult:
    """Render every complete run under ``paths`` into ``out`` (index.html, runs/*.html, compare-*.html)."""
    registry.load_all()
    out = Path(out)
    runs, partial = scan([Path(p) for p in paths])
    out_res = out.resolve()
    runs = [r for r in runs if not r.path.resolve().is_relative_to(out_res)]
    result = ReportResult(out=out, index=out / "index.html", runs=runs, partial=partial)
    writer = _Writer(result)
    for run in runs:
        ctx = registry.Ctx(Ids(), _linker(run, out, writer, copy_limit))
        writer.write(out / "runs" / f"{run.id}.html", render_run(run, ctx))
    by_command: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_command[r.command].append(r)
    for command, group in by_command.items():
        if len(group) > 1:
            writer.write(out / f"compare-{command}.html", render_compare(command, group))
    writer.write(out / "index.html", render_index(runs, partial, Ids()))
    writer.write(out / "report.json", json.dumps(
        {"runs": [{"id": r.id, "command": r.command, "models": r.models, "path": str(r.path),
                   "warnings": r.warnings} for r in runs], "partial": [str(p) for p in partial]}, indent=1, sort_keys=True))
    result.removed = _remove_stale(out, writer.keep)
    return result


def _remove_stale(out: Path, keep: set[Path]) -> int:
    """Pages and copied files of runs no longer in the report (only files this report writes)."""
    removed = 0
    candidates = list((out / "runs").glob("*.html")) + list(out.glob("compare-*.html"))
    files = out / "files"
    if files.is_dir():
        candidates += [p for p in files.rglob("*") if p.is_file()]
    for p in candidates:
        if p not in keep:
            p.unlink()
            removed += 1
    if files.is_dir():
        for d in sorted((p for p in files.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(d.iterdir()):
                d.rmdir()
    return removed
