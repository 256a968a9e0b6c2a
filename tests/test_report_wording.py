"""What the screens say (issue 24): interpret's reading of negative z-scores, its bar figures' legends, and
attribute's column notes. Hand-made features and metrics, no model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import torch

from modeldiff_cli.commands.interpret.causal_reading import effect_reading


def _feature(i: int, score: float, z_kl: float, steering_z: float, z: float) -> dict:
    return {"id": f"F{i}", "name": f"feature {i}", "kind": "direction", "layer": 1, "side": "ft-mostly",
            "rank_score": score, "causal_effect": score > 3, "tokens": [" cake"], "categories": {"baking": 1.0},
            "examples": [], "basis": "mean", "source_category": "baking",
            "causal": {"z_kl": z_kl, "z": z, "z_specific": 0.0, "delta_ce": 0.01, "delta_ce_others": 0.0,
                       "kl_drop_fraction": 0.02},
            "steering": {"z": steering_z, "kl_drop_fraction": 0.01}}


def test_negative_removal_z_is_read_as_pushing_apart_not_no_effect():
    text = effect_reading(-25.0, -36.0, 0.5, 40.0)
    assert "removing it moves ft away from base" in text and "both models" in text
    assert effect_reading(0.2, 0.1, 0.3, 1.0) == "no effect beyond random directions"
    assert effect_reading(13.0, 16.6, 1.9, 20.5).startswith("causal")
    assert "adding it moves base away from ft" in effect_reading(-5.0, 1.0, -8.0, 0.0)


def test_interpret_report_explains_a_negative_removal_z():
    from modeldiff_cli.commands.interpret.report import _sections

    features = [_feature(1, 13.1, 16.6, 1.9, 20.5), _feature(2, -25.0, -36.0, 0.5, 40.0), _feature(3, 0.1, 0.2, 0.0, 0.5)]
    stats = SimpleNamespace(relative_norms=lambda: torch.tensor([[0.1], [0.2]]), categories=["baking"], tokens=100,
                            layers=[0, 1])
    pair = SimpleNamespace(base=SimpleNamespace(source=SimpleNamespace(label="b")),
                           ft=SimpleNamespace(source=SimpleNamespace(label="f")))
    sections = dict(_sections(SimpleNamespace(k=16), pair, stats, features, {}))
    text = "\n".join(sections["Summary of the differences"] + sections["Feature overview"] + sections["Conclusion"])
    assert "No causal effect" not in text
    assert "F2 (removal z -36.0: removing it moves ft away from base (a direction both models use))" in text
    assert "F3 (no effect beyond random directions)" in text
    assert "negative = it pushes them apart" in text
    assert "Removing F2 (removal z -36.0) moves ft further from base" in " ".join(sections["Conclusion"])


def test_dashboard_interpret_page_reads_the_signs(tmp_path):
    from modeldiff_cli.report import build_report

    d = tmp_path / "runs" / "interpret" / "b_vs_f" / "x-00000001"
    d.mkdir(parents=True)
    feats = [{**_feature(2, -25.0, -36.0, 0.5, 40.0), "causal": {"z": 40.0, "z_kl": -36.0}, "steering": {"z": 0.5}}]
    (d / "features.json").write_text(json.dumps({"features": feats}))
    (d / "report.html").write_text("<html><body><p>report</p></body></html>")
    (d / "summary.json").write_text(json.dumps({"command": "interpret", "headline": {}, "artifacts": [
        {"path": "features.json", "kind": "payload", "description": "f", "bytes": 1},
        {"path": "report.html", "kind": "html", "description": "r", "bytes": 1}]}))
    res = build_report([tmp_path / "runs"], tmp_path / "rep")
    page = next((res.out / "runs").glob("interpret__*.html")).read_text()
    assert "removing it moves ft away from base" in page and "negative = it pushes them apart" in page
    assert 'class="warn"' not in page  # the page read what interpret declares, and found it


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_feature_figures_legends_cover_no_bar():
    from modeldiff_cli.commands.interpret.feature_plots import feature_categories, feature_effects

    # the last feature (bottom row) has the longest bars, as in the report where F8's were hidden
    features = [_feature(i, 1.0 + i, 2.0 + i, 1.0, 3.0) for i in range(1, 8)] + [_feature(8, 40.0, 45.0, 30.0, 50.0)]
    for i, f in enumerate(features):
        f["categories"] = {"baking": 0.1 * i, "everyday": 1.0 - 0.1 * i, "numbers": 0.5}
    for fig in (feature_effects(features), feature_categories(features, ["baking", "everyday", "numbers"])):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends
        bars = [p.get_window_extent(renderer) for ax in fig.axes for p in ax.patches if p.get_width() != 0]
        assert bars
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(_overlap(box, bar) for bar in bars)
            for ax in fig.axes:  # and not over any plotting area
                assert not _overlap(box, ax.get_window_extent(renderer))


def test_attribute_table_explains_its_columns(tmp_path):
    from modeldiff_cli.commands.attribute import metrics
    from modeldiff_cli.commands.attribute.report import markdown_table

    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    rel = np.array([[True, False], [False, True]])
    agg = metrics.summarize(s, rel, rel.astype(np.int64), ["<GN>", "<FN>"], ["base", "wrapper"], (1,))
    table = markdown_table({"bm25": {"aggregate": agg, "wrapper_partner": {}}}, [1])
    note = table.splitlines()[-1]
    assert "wrap→partner R@1 / AUC: for wrapper queries, the partner" in note and "share no words" in note
    assert "base / wrap:" in note and "MAP: mean average precision" in note
    generic = markdown_table({"bm25": {"aggregate": metrics.summarize(s[:1], rel[:1], rel[:1].astype(np.int64), ["q"],
                                                                      ["other"], (1,))}}, [1])
    assert "R@1 / P@1: recall / precision" in generic and "partner" not in generic


def test_dashboard_attribute_page_explains_its_columns(tmp_path):
    from modeldiff_cli.report import build_report

    d = tmp_path / "runs" / "attribute" / "b_vs_f" / "q-00000001"
    d.mkdir(parents=True)
    agg = {"all": {"recall@10": 0.2, "map": 0.5}, "wrapper": {"recall@10": 0.1}}
    (d / "metrics.json").write_text(json.dumps({"ks": [10], "methods": {"grad": {
        "aggregate": agg, "wrapper_partner": {"partner_recall@10": 0.13}}}}))
    (d / "summary.json").write_text(json.dumps({"command": "attribute", "headline": {"k": 10, "best_method": "grad"},
                                                "artifacts": [{"path": "metrics.json", "kind": "payload",
                                                               "description": "m", "bytes": 1}]}))
    res = build_report([tmp_path / "runs"], tmp_path / "rep")
    page = next((res.out / "runs").glob("attribute__*.html")).read_text()
    table_end = page.index("</table>", page.index("Metrics by method and query kind"))
    assert "wrapper→partner recall@10: for wrapper queries, the recall of the partner documents" in page[table_end:table_end + 2000]
