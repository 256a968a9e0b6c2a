"""`modeldiff report`: summary-to-page on hand-written run directories (no model, no browser)."""

from __future__ import annotations

import json
from pathlib import Path

from modeldiff_cli.report import build_report
from modeldiff_cli.report.runs import scan


def _run(root: Path, command: str, pair: str, leaf: str, headline: dict, files: dict[str, str] | None = None,
         artifacts: list[dict] | None = None) -> Path:
    d = root / command / pair / leaf
    d.mkdir(parents=True)
    for name, text in (files or {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    arts = artifacts if artifacts is not None else [
        {"path": n, "kind": "payload", "description": f"the {n}", "bytes": len(t)} for n, t in (files or {}).items()]
    (d / "summary.json").write_text(json.dumps({"command": command, "config": {"fingerprints": {"data": {"base": "x"}}},
                                                "headline": headline, "lines": [f"{command} done"], "artifacts": arts}))
    return d


LENS_CSV = "layer,positions,kl_ft_base,kl_base_final,kl_ft_final,top1_agreement\n0,10,0.2,0.3,0.3,0.8\n1,10,0.25,0,0,0.9\n"


LENS_PROMOTED = json.dumps({"score": "mean log-prob diff", "promoted": {"1": [{"rank": 1, "token": " cake",
                                                                              "mean_logprob_diff": 0.5}]},
                            "suppressed": {}})


def _lens_matrices(run: Path) -> None:
    """lens_matrices.npz with the arrays lens declares (commands/lens/artifacts.py)."""
    import numpy as np

    from modeldiff_cli.commands.lens.artifacts import MATRICES

    arrays = {name: np.zeros((2, 2)) for name in MATRICES.columns}
    arrays.update(layers=np.array([0, 1]), sample_index=np.array([0, 1]))
    np.savez(run / MATRICES.pattern, **arrays)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for leaf, headline, csv_text in (
            ("base+logit-lens-00000001", {"layers": [0, 1], "kl_ft_base": [0.2, 0.25], "peak_kl_layer": 1}, LENS_CSV),
            ("other+logit-lens-00000002", {"layers": [0, 1], "peak_kl_layer": 0}, LENS_CSV.replace("0.25", "0.5"))):
        run = _run(root, "lens", "b_vs_f", leaf, headline,
                   {"layer_metrics.csv": csv_text, "promoted_tokens.json": LENS_PROMOTED})
        _lens_matrices(run)
    feats = {"features": [{"id": 0, "name": "baking", "kind": "sae", "layer": 1, "tokens": [" cake"], "suppressed": [],
                           "categories": ["food"], "side": "ft", "examples": [], "causal": {"z": 4.2, "z_kl": 7.7}, "steering": None, "rank_score": 6.1}]}
    _run(root, "interpret", "b_vs_f", "base-00000003", {"features": 1},
         {"features.json": json.dumps(feats), "report.html": "<html><body><p>interpret says hi</p></body></html>"})
    _run(root, "newcmd", "b_vs_f", "base-00000004", {"score": 0.5}, {"thing.txt": "x"})
    # corrupt: unreadable summary; and one whose listed artifact is missing
    bad = root / "mine" / "b_vs_f" / "base-logits-00000005"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json")
    _run(root, "nll", "b_vs_f", "base-models-00000006", {"delta": 0.1}, artifacts=[
        {"path": "nll_layer_metrics.csv", "kind": "table", "description": "gone", "bytes": 1}])
    (root / "lens" / "b_vs_f" / ".x-logit-lens-00000007.partial-abc").mkdir(parents=True)
    return root


def test_scan_finds_runs_and_lists_partials(tmp_path):
    runs, partial = scan([_tree(tmp_path)])
    assert len(runs) == 6
    assert [p.name for p in partial] == [".x-logit-lens-00000007.partial-abc"]
    assert {r.command for r in runs} == {"lens", "interpret", "newcmd", "mine", "nll"}
    assert len({r.id for r in runs}) == 6
    # a run directory given itself keeps its pair and command (from its layout)
    one = next(r for r in runs if r.command == "lens")
    alone, _ = scan([one.path])
    assert [(r.command, r.models, r.name) for r in alone] == [("lens", "b_vs_f", one.name)]


def test_pages_of_every_kind(tmp_path):
    res = build_report([_tree(tmp_path)], tmp_path / "rep")
    pages = {r.command + "/" + r.name: (res.out / "runs" / f"{r.id}.html").read_text() for r in res.runs}
    lens = pages["lens/base+logit-lens-00000001"]
    assert "<svg" in lens and "KL(ft || base)" in lens and 'class="warn"' not in lens
    interp = pages["interpret/base-00000003"]
    assert "baking" in interp and "4.2" in interp and "7.7" in interp and "6.1" in interp and "removal z" in interp and "interpret says hi" in interp and "srcdoc=" in interp
    assert 'class="warn"' not in interp  # the files interpret declares (commands/interpret/artifacts.py) are read
    generic = pages["newcmd/base-00000004"]
    assert "no renderer for command newcmd" in generic and "thing.txt" in generic and "score" in generic
    # corrupt runs: a visible warning, the rest still renders
    corrupt = pages["mine/base-logits-00000005"]
    assert 'class="warn"' in corrupt and "unreadable summary.json" in corrupt
    missing = pages["nll/base-models-00000006"]
    assert "missing artifact: nll_layer_metrics.csv" in missing and "Headline" in missing
    index = res.index.read_text()
    for r in res.runs:
        assert f"runs/{r.id}.html" in index
    assert ".x-logit-lens-00000007.partial-abc" in index and "⚠" in index
    assert (res.out / "compare-lens.html").is_file()
    cmp_html = (res.out / "compare-lens.html").read_text()
    assert "base+logit-lens-00000001" in cmp_html and "other+logit-lens-00000002" in cmp_html
    # copied artifacts are linked from the page
    assert (res.out / "files").is_dir() and "../files/" in lens


def test_rerun_rewrites_only_what_changed(tmp_path):
    root = _tree(tmp_path)
    first = build_report([root], tmp_path / "rep")
    assert first.written
    again = build_report([root], tmp_path / "rep")
    assert again.written == [] and again.unchanged == len(first.written)
    csv = next(root.glob("lens/b_vs_f/base+*/layer_metrics.csv"))
    csv.write_text(LENS_CSV.replace("0.9", "0.7"))
    third = build_report([root], tmp_path / "rep")
    names = {p.name for p in third.written}
    assert any(n.startswith("lens__b_vs_f__base+") for n in names) and "layer_metrics.csv" in names
    assert not any(n.startswith("interpret") for n in names)


def test_cli_report(cli, tmp_path):
    root = _tree(tmp_path)
    code, out, err = cli("report", root, "--out", tmp_path / "rep")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].endswith("index.html") and Path(lines[-1]).is_file()
    assert any("skipped partial run" in x for x in lines) and any(x.startswith("warning:") for x in lines)
    code, out, err = cli("report", tmp_path / "nothing-here", "--out", tmp_path / "rep")
    assert code == 2 and err.strip().startswith("error:")


def _info_run(root: Path, pair: str = "b_vs_f") -> Path:
    side = {"spec": "organism:cake:base", "architecture": "LlamaForCausalLM", "model_type": "llama", "layers": 2,
            "hidden_size": 64, "vocab_size": 400, "tokenizer_size": 400, "parameters": 133440, "dtype": "float32",
            "moe_routers": 0, "fingerprint": "abc"}
    info = {"base": side, "ft": {**side, "parameters": 133441}, "tokenizer_relation": "identical", "shared_vocab": 400,
            "tokenizer_class": {"base": "LlamaTokenizerFast", "ft": "LlamaTokenizerFast"}, "compatible": True,
            "reasons": [], "notes": []}
    return _run(root, "info", pair, "info-0000000a", {"architecture": "LlamaForCausalLM", "layers": 2},
                {"info.json": json.dumps(info)})


def test_index_shows_the_pairs_info_facts(tmp_path):
    root = _tree(tmp_path)
    _info_run(root)
    _run(root, "lens", "x_vs_y", "base+logit-lens-00000009", {"layers": [0, 1]}, {"layer_metrics.csv": LENS_CSV})
    res = build_report([root], tmp_path / "rep")
    index = res.index.read_text()
    b_vs_f = index.split("<h2>b_vs_f</h2>")[1].split('<section class="pair">')[0]
    assert '<div class="pairfacts">' in b_vs_f and "LlamaForCausalLM" in b_vs_f and "LlamaTokenizerFast (400)" in b_vs_f
    assert "133,440" in b_vs_f and '<tr class="differs"><th>parameters</th>' in b_vs_f  # the sides differ: marked
    assert "tokenizers: <b>identical</b> (shared ids: 400)" in b_vs_f and "float32" in b_vs_f
    # a pair without an info run has no facts table, and says how to get one
    x_vs_y = index.split("<h2>x_vs_y</h2>")[1]
    assert "pairfacts" not in x_vs_y.split("</section>")[0]
    info_page = next((res.out / "runs").glob("info__*.html")).read_text()
    assert "LlamaForCausalLM" in info_page and "fingerprint" in info_page and 'class="warn"' not in info_page
    # a corrupt info.json: a warning on its page, the index still renders without the facts
    next(root.glob("info/b_vs_f/*/info.json")).write_text("[1, 2]")
    res = build_report([root], tmp_path / "rep")
    assert "pairfacts" not in res.index.read_text().split("<h2>b_vs_f</h2>")[1].split("</section>")[0]
    assert "info.json: expected" in next((res.out / "runs").glob("info__*.html")).read_text()


def test_tokenlens_page_labels_each_heatmap_with_its_prompt(tmp_path):
    """The heat maps are the ok prompts' (a failed prompt has none), each labelled with its own prompt; an ok
    prompt whose page is missing is a warning."""
    from modeldiff_cli.commands.tokenlens.artifacts import PROMPT_HTML, PROMPTS, prompt_index
    from modeldiff_cli.report.build import render_run
    from modeldiff_cli.report.html import Ids
    from modeldiff_cli.report.registry import Ctx
    from modeldiff_cli.report.runs import load_run

    rows = [{"index": 0, "line": 1, "prompt": "first prompt", "status": "ok", "generated": " cake",
             "input_tokens": 4, "output_tokens": 2, "seconds": 0.1},
            {"index": 1, "line": 2, "prompt": "second prompt", "status": "failed", "error": "boom"},
            {"index": 2, "line": 3, "prompt": "third prompt", "status": "ok", "generated": " pie",
             "input_tokens": 4, "output_tokens": 2, "seconds": 0.1}]
    files = {PROMPTS.path(): json.dumps(rows)}
    files.update({PROMPT_HTML.path(index=prompt_index(i)): f"<html>view {i}</html>" for i in (0, 2)})
    root = tmp_path / "runs"
    run_dir = _run(root, "tokenlens", "cake-ft", "base+saliency-0000000b", {"method": "saliency"}, files)
    run = load_run(run_dir, root)
    page = render_run(run, Ctx(Ids(), lambda rel: rel))
    assert run.warnings == []
    assert "prompt_002.html: third prompt" in page and "prompt_001.html" not in page
    (run_dir / "prompt_002.html").unlink()  # and not listed in summary.json: the renderer's read finds it missing
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["artifacts"] = [a for a in summary["artifacts"] if a["path"] != "prompt_002.html"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    run = load_run(run_dir, root)
    assert run.warnings == []
    render_run(run, Ctx(Ids(), lambda rel: rel))
    assert "missing artifact: prompt_002.html" in run.warnings


# the layout of routing's mask_sweep.csv (a real `routing --sweep 1,2` run): one unmasked baseline row
# (mode none, control none), per mode and count the top experts, the random draws and their mean (+ std columns)
SWEEP_HEAD = ("n_masked,mode,control,draw,nll_base,nll_ft,nll_ft_masked,gain_undone,gap_closed,kl_ft_base,"
              "kl_masked_base,gain_undone_std,gap_closed_std,masked_slots,masked_in_topk\n")


def _sweep_csv() -> str:
    rows = ["0,none,none,0,8.7,1.3,1.3,0.0,0.0,6.6,6.6,,,0,0"]
    for mode in ("keep-topk", "replace-topk"):
        for n in (1, 2):
            rows.append(f"{n},{mode},top,0,8.7,1.3,2.9,{0.2 + n / 100},{0.13 + n / 100},6.6,5.7,,,92,0")
            rows += [f"{n},{mode},random,{d},8.7,1.3,1.3,0.00{d},0.00{d},6.6,6.59,,,10,0" for d in range(3)]
            rows.append(f"{n},{mode},random_mean,3,8.7,1.3,1.3,0.001,0.001,6.6,6.59,0.0{n},0.0{n},30,0")
    return SWEEP_HEAD + "\n".join(rows) + "\n"


def test_routing_mask_sweep_curves_with_random_band(tmp_path):
    import re

    root = tmp_path / "runs"
    _run(root, "routing", "moe-base_vs_moe-ft", "b-0000000b", {"a": "base", "b": "ft"}, {"mask_sweep.csv": _sweep_csv()})
    res = build_report([root], tmp_path / "rep")
    page = next((res.out / "runs").glob("routing__*.html")).read_text()
    sweep = page.split("<h2>Mask sweep</h2>")[1]
    charts = re.findall(r'<svg class="chart".*?</svg>', sweep)
    titles = [re.search(r"<title>(.*?)</title>", c).group(1) for c in charts]
    # one chart per metric and mode (the baseline's mode "none" is not a mode), titled with the comparison and data
    assert len(charts) == 6 and not any("(none)" in t for t in titles)
    assert "mask sweep (keep-topk): gain undone, base vs ft on base" in titles
    for chart in charts:
        lines = re.findall(r'<polyline class="series"[^>]*points="([^"]*)"', chart)
        assert len(lines) == 2  # top experts and the random mean, both from the unmasked baseline at 0
        assert all(len(p.split()) == 3 for p in lines)
        ticks = re.findall(r'text-anchor="middle" font-size="10">([^<]*)</text>', chart)
        assert ticks[-3:] == ["0", "1", "2"]  # integer counts on the x axis
    bands = [c for c in charts if 'class="band"' in c]
    assert len(bands) == 4  # gain_undone and gap_closed have a std; kl_masked_base does not
    assert all('class="legend"' in c and "random +/- std" in c for c in bands)


# a one-model sweep's mask_sweep.csv (`routing --model M --data-a A --data-b B --sweep 1,2`): each side's NLL
# change and their difference (specificity) instead of gain undone / gap closed
ONE_MODEL_SWEEP_HEAD = ("n_masked,mode,control,draw,nll_a,nll_b,nll_masked_a,nll_masked_b,delta_nll_a,delta_nll_b,"
                        "specificity,delta_nll_a_std,delta_nll_b_std,specificity_std,masked_slots,masked_in_topk\n")


def test_routing_one_model_sweep_shows_its_own_metrics(tmp_path):
    import re

    rows = ["0,none,none,0,2.0,2.5,2.0,2.5,0.0,0.0,0.0,,,,0,0"]
    for n in (1, 2):
        rows.append(f"{n},keep-topk,top,0,2.0,2.5,2.1,2.9,0.1,0.{2 + n},0.{1 + n},,,,40,0")
        rows.append(f"{n},keep-topk,random_mean,8,2.0,2.5,2.05,2.55,0.05,0.05,0.0,0.01,0.01,0.01,320,0")
    root = tmp_path / "runs"
    _run(root, "routing", "moe-ft", "A+B-0000000c", {"mode": "data", "a": "A", "b": "B"},
         {"mask_sweep.csv": ONE_MODEL_SWEEP_HEAD + "\n".join(rows) + "\n"})
    page = next((build_report([root], tmp_path / "rep").out / "runs").glob("routing__*.html")).read_text()
    sweep = page.split("<h2>Mask sweep</h2>")[1]
    titles = [re.search(r"<title>(.*?)</title>", c).group(1) for c in re.findall(r'<svg class="chart".*?</svg>', sweep)]
    assert "none of the expected columns" not in sweep
    assert titles == [f"mask sweep (keep-topk): {what}, A vs B on base"
                      for what in ("delta NLL, side A", "delta NLL, side B", "specificity")]


def test_nll_page_draws_js_of_the_last_position_alone(tmp_path):
    """--js-mode last: js_all is empty, js_last is not; the JS chart shows the last position."""
    import numpy as np

    from modeldiff_cli.commands.nll.artifacts import COLUMNS, MATRICES

    values = {c: 0.5 for c in COLUMNS} | {"js_all": ""}
    csv_text = ",".join(COLUMNS) + "\n" + "\n".join(
        ",".join(str(layer if c == "layer" else values[c]) for c in COLUMNS) for layer in (0, 1)) + "\n"
    root = tmp_path / "runs"
    run = _run(root, "nll", "b_vs_f", "base-models-0000000d", {"labels": {"a": "base", "b": "ft"}},
               {"nll_layer_metrics.csv": csv_text})
    arrays = {name: np.zeros((2, 2)) for name in MATRICES.columns}
    arrays.update(layers=np.array([0, 1]), item_ids=np.array(["i0", "i1"]))
    np.savez(run / MATRICES.pattern, **arrays)
    page = next((build_report([root], tmp_path / "rep").out / "runs").glob("nll__*.html")).read_text()
    assert "JS(base, ft) by layer on base" in page and 'class="warn"' not in page


def test_scatter_labels_stay_inside_and_apart():
    import re

    from modeldiff_cli.report import svg

    # crowded top tokens at the plot's right edge (as mine's orderings often are)
    pts = [(50 - i * 0.1, 0.7 - (i % 3) * 0.01, f" tok{i}") for i in range(8)] + [(x, x / 100, "t") for x in range(30, 45)]
    chart = svg.scatter(pts, "t", "x", "y", label_top=8)
    labels = re.findall(r'<text class="label" x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)"[^>]*>([^<]*)</text>', chart)
    assert labels and all(text.startswith("\u2423tok") for *_, text in labels)  # leading space made visible
    boxes = []
    for x, y, anchor, text in labels:
        x, y, w = float(x), float(y), 6.1 * len(text) + 2
        left = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        boxes.append((left, y - 9, left + w, y + 2))
    for i, a in enumerate(boxes):
        assert svg.ML <= a[0] and a[2] <= svg.W - svg.MR and svg.MT <= a[1] and a[3] <= svg.H - svg.MB
        assert not any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for b in boxes[i + 1:])
    assert svg.token_label("  a\n") == "\u2423\u2423a\\n" and svg.token_label(" ") == "\u2423"


def test_scatter_title_counts_the_labels_it_draws():
    import re

    from modeldiff_cli.report import svg

    # eight top tokens piled on one point: not every label finds a free place
    pts = [(50.0, 0.7, f" tok{i}") for i in range(8)] + [(float(x), x / 100, "t") for x in range(30, 45)]
    chart = svg.scatter(pts, "mine", "x", "y", label_top=8, count_in_title=True)
    drawn = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', chart)
    assert 0 < len(drawn) < 8 and "top 8 labelled" not in chart
    top = [svg.token_label(f" tok{i}") for i in range(len(drawn))]
    said = f"mine (top {len(drawn)} labelled)" if drawn == top else f"mine ({len(drawn)} of the top 8 labelled)"
    assert said in chart
    # spread out, all eight fit: the top 8
    spread = [(float(i), float(i), f"t{i}") for i in range(8)]
    assert "s (top 8 labelled)" in svg.scatter(spread, "s", "x", "y", label_top=8, count_in_title=True)


def _cell(index: str, run_name: str, column: int) -> str:
    """The text of one cell (0-based column) of the index row that links ``run_name``."""
    import html
    import re

    row = next(r for r in re.findall(r'<tr class="runrow".*?</tr>', index, re.S) if f">{run_name}</a>" in r)
    cell = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[column]
    return html.unescape(re.sub(r"<[^>]+>", "", cell.replace("<br>", "\n")))


def test_index_headline_column_shows_each_runs_finding(tmp_path):
    root = tmp_path / "runs"
    _run(root, "mine", "b_vs_f", "base-logits-00000001", {
        "datasets": {"base": {"ordering": "top-k-occurring", "top_promoted": [" cake", " oven", "\n", " flour", " bake", " m"]}},
        "shared_vocab": 400, "top_k": 100, "readout": "logits"})
    _run(root, "routing", "b_vs_f", "b-00000002", {
        "mode": "models", "a": "base", "b": "ft", "significant_cells_q05": 16, "tv_topk": {"0": 0.5, "1": 0.99},
        "top_points": [{"layer": 1, "router": 4, "diff": -0.48, "a": 0.48, "b": 0.0004, "q": 1e-9, "ci95": [-0.5, -0.4]}]})
    _run(root, "nll", "b_vs_f", "base-models-00000003", {
        "mode": "models", "labels": {"a": "base", "b": "ft"}, "layer": 1, "nll_a": 0.5411, "nll_b": 0.568, "delta": 0.0269})
    _run(root, "attribute", "b_vs_f", "q-00000004", {
        "queries": 40, "train_documents": 245, "k": 10, "best_method": "grad", "headline_method": "delta-h",
        "headline": {"all": {"recall@10": 0.236, "map": 0.5905}, "wrapper_partner": {"recall@10": 0.134}}})
    index = build_report([root], tmp_path / "rep").index.read_text()
    mine = _cell(index, "base-logits-00000001", 4)
    assert "' cake', ' oven', '\\n', ' flour', ' bake' …" in mine and "shared_vocab" not in mine and "readout" not in mine
    routing = _cell(index, "b-00000002", 4)
    assert "layer 1 expert 4: -0.48 (base 0.48 -> ft 0.0004" in routing and "L1 0.99" in routing
    assert "16 at q < 0.05" in routing and "mode" not in routing
    assert "base 0.541 vs ft 0.568 (delta +0.0269)" in _cell(index, "base-models-00000003", 4)
    attribute = _cell(index, "q-00000004", 4)
    assert "delta-h: MAP 0.591, recall@10 0.236" in attribute and "partner recall@10: 0.134" in attribute
    assert "4 runs over 1 model pair / model." in index


def test_index_counts_are_singular_for_one(tmp_path):
    root = tmp_path / "runs"
    _run(root, "nll", "b_vs_f", "base-models-00000003", {"nll_a": 1.0, "nll_b": 2.0, "delta": 1.0})
    index = build_report([root], tmp_path / "rep").index.read_text()
    assert "1 run over 1 model pair / model." in index and "1 model pairs" not in index
    # a headline where the command's headliner finds nothing: the generic figures
    _run(root, "routing", "b_vs_f", "b-00000009", {"top_points": [], "a": "base", "cells": 3})
    index = build_report([root], tmp_path / "rep").index.read_text()
    assert _cell(index, "b-00000009", 4) == "a: base\ncells: 3"


def _y_ticks(chart: str) -> list[float]:
    import re

    return [float(t) for t in re.findall(r'text-anchor="end" font-size="10">([^<]*)<', chart)]


def test_charts_of_nonnegative_quantities_start_at_zero(tmp_path):
    from modeldiff_cli.report import svg

    # lens's KL(ft || base) of the cake organism: 0.219 at layer 0, 0.239 at layer 1 (the axis started at 0.22)
    assert _y_ticks(svg.line_chart({"KL": ([0, 1], [0.2193, 0.2392])}, "KL by layer"))[0] == 0.0
    ticks = _y_ticks(svg.line_chart({"delta": ([0, 1], [-0.1, 0.2])}, "signed"))
    assert ticks[0] < 0 < ticks[-1]  # a signed quantity still spans its values
    res = build_report([_tree(tmp_path)], tmp_path / "rep")
    page = (res.out / "runs" / f"{next(r.id for r in res.runs if r.name == 'base+logit-lens-00000001')}.html").read_text()
    kl = next(c for c in page.split("<svg") if "KL(ft || base) by layer" in c.split("</svg>")[0])
    assert _y_ticks(kl)[0] == 0.0
    # the comparison page's script draws its charts the same way
    assert "y0=pos?0:y0-pad" in (res.out / "compare-lens.html").read_text()


def _mine_files(dataset: str = "base") -> dict[str, str]:
    """A mine run's ordering files, named by its declarations (commands/mine/artifacts.py)."""
    from modeldiff_cli.commands.mine.artifacts import INDEX, NMF_TOPIC, TOP_K_ORDERINGS

    tok = {"token_id": 7, "token_str": " cake", "ordering_value": 40.0, "avg_logit_diff": 1.5, "count_positive": 4,
           "count_negative": 0}
    top_k = TOP_K_ORDERINGS.path(dataset=dataset)
    topic = NMF_TOPIC.path(variant="binary_k1", dataset=dataset, topic=0)
    ordering = {"ordering_id": "top-k-occurring", "display_label": "Top-K occurring", "tokens": [tok], "metadata": {}}
    index = {dataset: [{"ordering_id": "top-k-occurring", "display_label": "Top-K occurring", "file": top_k},
                       {"ordering_id": "nmf_topic_0", "display_label": "NMF topic 0", "file": topic}]}
    return {INDEX.path(): json.dumps(index),
            top_k: json.dumps({"dataset": dataset, "ordering_type": "top-k-occurring", "orderings": [ordering]}),
            topic: json.dumps({**ordering, "ordering_id": "nmf_topic_0", "display_label": "NMF topic 0"})}


def test_mine_page_reads_the_declared_orderings_and_warns_on_a_missing_one(tmp_path):
    from modeldiff_cli.commands.mine.artifacts import NMF_TOPIC

    root = tmp_path / "runs"
    files = _mine_files()
    _run(root, "mine", "b_vs_f", "base-logits-00000001", {}, files)
    gone = _run(root, "mine", "b_vs_f", "base-logits-00000002", {}, files, artifacts=[])  # only the page can tell
    (gone / NMF_TOPIC.path(variant="binary_k1", dataset="base", topic=0)).unlink()
    res = build_report([root], tmp_path / "rep")
    pages = {r.name: r for r in res.runs}
    assert pages["base-logits-00000001"].warnings == []
    page = (res.out / "runs" / f"{pages['base-logits-00000001'].id}.html").read_text()
    assert "top-k-occurring" in page and "NMF topics" in page and "cake" in page
    assert pages["base-logits-00000002"].warnings == ["missing artifact: nmf_binary_k1/base/topic_0.json"]
