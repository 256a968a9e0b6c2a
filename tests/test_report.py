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


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _run(root, "lens", "b_vs_f", "base+logit-lens-00000001", {"layers": [0, 1], "kl_ft_base": [0.2, 0.25], "peak_kl_layer": 1},
         {"layer_metrics.csv": LENS_CSV})
    _run(root, "lens", "b_vs_f", "other+logit-lens-00000002", {"layers": [0, 1], "peak_kl_layer": 0},
         {"layer_metrics.csv": LENS_CSV.replace("0.25", "0.5")})
    feats = {"features": [{"id": 0, "name": "baking", "kind": "sae", "layer": 1, "tokens": [" cake"], "suppressed": [],
                           "categories": ["food"], "side": "ft", "examples": [], "causal": {"z": 4.2}, "steering": None}]}
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


def test_pages_of_every_kind(tmp_path):
    res = build_report([_tree(tmp_path)], tmp_path / "rep")
    pages = {r.command + "/" + r.name: (res.out / "runs" / f"{r.id}.html").read_text() for r in res.runs}
    lens = pages["lens/base+logit-lens-00000001"]
    assert "<svg" in lens and "KL(ft || base)" in lens and 'class="warn"' not in lens
    interp = pages["interpret/base-00000003"]
    assert "baking" in interp and "4.2" in interp and "interpret says hi" in interp and "srcdoc=" in interp
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
