"""What the figures draw (checked on the matplotlib objects before they are saved): mine's bar and scatter
labels, the routing sweep curves."""

from __future__ import annotations

import pytest


@pytest.fixture
def figures(monkeypatch):
    """The figures handed to ``save_figure``, by file name (closed after the test)."""
    import matplotlib.pyplot as plt

    from modeldiff_cli.core.spine import artifacts

    saved: dict = {}

    def keep(path, fig, dpi=120):
        saved[str(path).rsplit("/", 1)[-1]] = fig
        return path

    monkeypatch.setattr(artifacts, "save_figure", keep)
    monkeypatch.setattr("modeldiff_cli.commands.mine.plots.save_figure", keep)
    yield saved
    for fig in saved.values():
        plt.close(fig)


def _ordering(strings):
    return {"ordering_id": "top-k-occurring",
            "tokens": [{"token_str": s, "ordering_value": 100.0 - 10 * i, "avg_logit_diff": 0.5 + 0.3 * i}
                       for i, s in enumerate(strings)]}


def test_mine_labels_show_spaces_and_follow_rank(figures, tmp_path):
    from modeldiff_cli.commands.mine.plots import ordering_plots

    strings = [" cake", "cake", " ", "", "oven ", " flour", " sugar", " butter"]
    ordering_plots(_ordering(strings), tmp_path / "o_bar.png", tmp_path / "o_scatter.png", n_labels=6)
    bar = figures["o_bar.png"].axes[0]
    # the strongest token on top (bars drawn bottom-up), spaces as ␣ so " cake" and "cake" differ
    assert [t.get_text() for t in bar.get_yticklabels()][::-1] == ["␣cake", "cake", "␣", "∅", "oven␣", "␣flour",
                                                                      "␣sugar", "␣butter"]
    scatter = figures["o_scatter.png"].axes[0]
    labels = [t.get_text() for t in scatter.texts]
    # labelled tokens are exactly the top ones, in rank order, and the title says how many
    assert labels == ["␣cake", "cake", "␣", "∅", "oven␣", "␣flour"][: len(labels)] and len(labels) >= 3
    assert f"top {len(labels)} labelled" in scatter.get_title()


def test_mine_scatter_png_axes_match_the_report(figures, tmp_path):
    """The saved scatter and the report's: x = ordering value, y = average logit diff (ft - base)."""
    import re

    from modeldiff_cli.commands.mine.plots import ordering_plots
    from modeldiff_cli.report import svg

    ordering = _ordering([" cake", " oven", " flour"])
    ordering_plots(ordering, tmp_path / "o_bar.png", tmp_path / "o_scatter.png", n_labels=3)
    ax = figures["o_scatter.png"].axes[0]
    xy = ax.collections[0].get_offsets()
    toks = ordering["tokens"]
    assert xy[:, 0].tolist() == [t["ordering_value"] for t in toks]
    assert xy[:, 1].tolist() == pytest.approx([t["avg_logit_diff"] for t in toks])
    assert ax.get_xlabel() == "ordering value" and ax.get_ylabel().startswith("average logit diff")
    html = svg.scatter([(t["ordering_value"], t["avg_logit_diff"], t["token_str"]) for t in toks], "t",
                       "ordering value", "avg logit diff (ft - base)")
    labels = re.findall(r'<text[^>]*font-size="11"[^>]*>([^<]*)</text>', html)
    assert labels[0] == "ordering value" and labels[1] == "avg logit diff (ft - base)"  # x label, then y label


def test_routing_sweep_curves_start_at_the_baseline(figures, tmp_path):
    import numpy as np

    from modeldiff_cli.commands.routing.plots import sweep_curve

    rows = [{"mode": "none", "control": "baseline", "n_masked": 0, "gap_closed": 0.05, "gap_closed_std": 0.0}]
    for n in (1, 2, 4):
        rows.append({"mode": "a", "control": "top", "n_masked": n, "gap_closed": 0.1 * n, "gap_closed_std": 0.0})
        rows.append({"mode": "a", "control": "random_mean", "n_masked": n, "gap_closed": 0.02 * n,
                     "gap_closed_std": 0.01})
    sweep_curve(tmp_path / "s.png", rows, "gap_closed")
    ax = figures["s.png"].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    top, rnd = lines["top (a)"], lines["random (a, mean +/- std)"]
    for line in (top, rnd):
        assert list(line.get_xdata()) == [0, 1, 2, 4] and line.get_ydata()[0] == pytest.approx(0.05)
    assert rnd.get_linestyle() == "--" and top.get_linestyle() == "-"
    band = ax.collections[0].get_paths()[0].vertices
    at_zero = band[np.isclose(band[:, 0], 0.0), 1]
    assert np.allclose(at_zero, 0.05)  # no spread with nothing masked
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 4]
    assert all(float(t).is_integer() for t in ticks)
    assert ax.get_ylabel() == "gap closed"


def test_attribute_recall_plot_legend_off_the_curves(figures, tmp_path):
    from modeldiff_cli.commands.attribute.report import _plot

    ks = [1, 5, 10]
    results = {m: {"aggregate": {s: {f"recall@{k}": 0.1 * k / 10 + i / 10 for k in ks} for s in ("all", "base")}}
               for i, m in enumerate(("bm25", "grad", "ekfac", "random"))}
    _plot(tmp_path / "r.png", results, ks, "old vs new on hops")
    fig = figures["r.png"]
    assert len(fig.axes) == 2 and all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(results)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert lines["random"].get_linestyle() == ":"
    assert len({lines[m].get_marker() for m in ("bm25", "grad", "ekfac", "random")}) == 4
    assert fig._suptitle.get_text().endswith("old vs new on hops")
