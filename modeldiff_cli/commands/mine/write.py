"""Everything `mine` writes (statistics, orderings, NMF topics, likelihood ratios, plots; each file's name from
its declaration in ``artifacts.py``), and the headline: the top promoted tokens of each dataset and the counts."""

from __future__ import annotations

from ...core.data.tokens import visible
from ...core.spine import plot_queue
from ...core.spine.artifacts import write_json
from ...core.spine.command import Result
from ...core.spine.timing import stage
from .artifacts import (
    GLOBAL_STATS,
    INDEX,
    LIKELIHOOD_RATIOS,
    NMF,
    NMF_ORDERINGS,
    NMF_TOPIC,
    NMF_TOPIC_BAR,
    NMF_TOPIC_SCATTER,
    NMF_TOPICS,
    ORDERING_BAR,
    ORDERING_FILES,
    ORDERING_SCATTER,
    POSITIONS_PLOT,
    TOP_K,
    nmf_variant,
    ordering_paths,
)
from .stats import POSITION_BINS

HEADLINE_TOKENS = 10


def stats_json(name: str, acc, view) -> dict:
    s = acc.stats
    return {
        "dataset": name, "total_positions": s.total_positions, "top_k": s.top_k, "vocab_size": s.vocab,
        "position_bin_width": s.position_bin_width, "position_bins": POSITION_BINS,
        "token_str": view.strings, "sum_logit_diff": s.sum_diff, "count_positive_diff": s.count_positive,
        "count_topk_positive": s.count_topk_pos, "count_topk_negative": s.count_topk_neg,
    }


def write_outputs(run, cmd, inputs, results) -> None:
    index: dict[str, list[dict]] = {}
    for res in results.datasets:
        entries = index.setdefault(res.name, [])
        write_json(run.file(GLOBAL_STATS.path(dataset=res.name)), stats_json(res.name, res.acc, results.view), indent=None)
        for kind, ordering in res.orderings.items():
            names = ordering_paths(kind, res.name)
            file = ORDERING_FILES[kind].path(**names)
            write_json(run.file(file), {"dataset": res.name, "ordering_type": kind, "orderings": [ordering]})
            entries.append({"ordering_id": kind, "display_label": ordering["display_label"], "file": file})
            if cmd.plots:
                _plots(run, ordering, ORDERING_BAR.path(**names), ORDERING_SCATTER.path(**names),
                       _context(cmd, res.name),
                       positions=POSITIONS_PLOT.path(**names) if kind == TOP_K else None, res=res)
        if NMF in cmd.ordering_list:
            _write_nmf(run, cmd, res, entries)
        if cmd.likelihood_ratios:
            write_json(run.file(LIKELIHOOD_RATIOS.path(dataset=res.name)), _ratios(res))
    write_json(run.file(INDEX.path()), index)


def _write_nmf(run, cmd, res, entries: list[dict]) -> None:
    names = {"variant": nmf_variant(cmd), "dataset": res.name}
    topics = res.topics
    write_json(run.file(NMF_ORDERINGS.path(**names)),
               {"dataset": res.name, "ordering_type": "nmf", "orderings": res.topic_orderings})
    write_json(run.file(NMF_TOPICS.path(**names)), {
        "dataset": res.name, "topics": len(res.topic_orderings),
        "mass": topics.mass if topics is not None else [], "prevalence": topics.prevalence if topics is not None else [],
        "pairwise_cosine": topics.cosine if topics is not None else [],
        "iterations": topics.iterations if topics is not None else 0,
        "backend": topics.backend if topics is not None else None,
    })
    for t, ordering in enumerate(res.topic_orderings):
        file = NMF_TOPIC.path(**names, topic=t)
        write_json(run.file(file), ordering)
        entries.append({"ordering_id": ordering["ordering_id"], "display_label": ordering["display_label"],
                        "file": file})
        if cmd.plots:
            _plots(run, ordering, NMF_TOPIC_BAR.path(**names, topic=t), NMF_TOPIC_SCATTER.path(**names, topic=t),
                   _context(cmd, res.name))


def _context(cmd, dataset: str) -> str:
    """"<base> vs <ft> on <dataset>" for the plot titles (the dataset alone when the labels cannot be read)."""
    try:
        base, ft = cmd.compared.labels
    except Exception:  # noqa: BLE001 - a title must never fail a run
        return f"on {dataset}"
    return f"{base} vs {ft} on {dataset}"


def _plots(run, ordering: dict, bar: str, scatter: str, context: str = "", positions: str | None = None,
           res=None) -> None:
    """An ordering's bar chart and scatter; with ``positions`` (top-k-occurring) where its top tokens occur."""
    from .plots import ordering_plots, positional_plot

    if not ordering["tokens"]:
        return
    with stage("plots"):  # drawn by core.spine.plot_queue's workers where the machine has the cores, else here
        plot_queue.submit(ordering_plots, ordering, run.file(bar), run.file(scatter), context=context)
        if positions is not None:
            top = ordering["tokens"][:8]
            ids = [t["token_id"] for t in top]
            plot_queue.submit(positional_plot, res.acc.stats.position_hist[ids].numpy(),
                              res.acc.stats.position_bin_width, [t["token_str"] for t in top],
                              run.file(positions), context)


def _ratios(res) -> list[dict]:
    acc = res.acc
    rows = []
    for i in range(acc.seq_tokens.shape[0]):
        n = int(acc.seq_tokens[i])
        if n == 0:
            continue
        lb, lf = float(acc.seq_logp_base[i]), float(acc.seq_logp_ft[i])
        rows.append({"sample_index": i, "scored_tokens": n, "logp_base": lb, "logp_ft": lf,
                     "log_likelihood_ratio": lf - lb, "mean_log_ratio_per_token": (lf - lb) / n})
    return rows


def _lead(res) -> dict | None:
    """The ordering the headline shows: top-k-occurring, else the first other one, else the first NMF topic."""
    if "top-k-occurring" in res.orderings:
        return res.orderings["top-k-occurring"]
    if res.orderings:
        return next(iter(res.orderings.values()))
    return res.topic_orderings[0] if res.topic_orderings else None


def headline(cmd, inputs, results) -> Result:
    """summary.json's headline: per dataset its counts and top promoted tokens; plus the run's facts."""
    datasets, lines = {}, []
    for ds, res in zip(inputs.datasets, results.datasets, strict=True):
        lead = _lead(res)
        top = lead["tokens"][:HEADLINE_TOKENS] if lead else []
        datasets[res.name] = {
            "samples": len(ds.samples), "positions": res.acc.stats.total_positions,
            "orderings": len(res.orderings) + len(res.topic_orderings),
            "ordering": lead["ordering_id"] if lead else None,
            "top_promoted": [t["token_str"] for t in top],
            "top_promoted_values": [t["ordering_value"] for t in top],
        }
        lines.append(f"{res.name}: {len(ds.samples)} samples, {res.acc.stats.total_positions} positions, "
                     f"{datasets[res.name]['orderings']} orderings")
        if lead:
            lines.append(f"{res.name}: tokens promoted by fine-tuning ({lead['ordering_id']}): "
                         + ", ".join(f"{visible(t['token_str'])!r} {t['ordering_value']:.3g}" for t in top))
    figures = {"datasets": datasets, "shared_vocab": inputs.shared_vocab, "top_k": cmd.top_k,
               "readout": cmd.readout.readout, "layer": inputs.layer}
    nmf = "nmf" in cmd.ordering_list
    metadata = {
        "shared_vocab": inputs.shared_vocab, "tokenizer_relation": inputs.report.tokenizer_relation,
        "pair_notes": inputs.report.notes, "readout": cmd.readout.readout, "layer": inputs.layer,
        "n_layers": inputs.n_layers, "two_pass": cmd.two_pass, "orderings": cmd.ordering_list,
        "token_filters": results.view.filters,
        "nmf_backend_used": {r.name: r.topics.backend for r in results.datasets if r.topics is not None} if nmf else None,
        "datasets": [{"name": d.name, "path": str(d.path), "samples": len(d.samples), "positions": r.acc.stats.total_positions}
                     for d, r in zip(inputs.datasets, results.datasets, strict=True)],
    }
    return Result(headline=figures, lines=lines, metadata=metadata)
