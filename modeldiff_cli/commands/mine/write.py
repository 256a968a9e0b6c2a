"""Everything `mine` writes (statistics, orderings, NMF topics, likelihood ratios, plots), each artifact
described for summary.json, and the headline: the top promoted tokens of each dataset and the counts."""

from __future__ import annotations

from pathlib import Path

from ...core.data.tokens import visible
from ...core.spine import plot_queue
from ...core.spine.artifacts import write_json
from ...core.spine.command import Result
from ...core.spine.timing import stage
from .payload import INDEX
from .stats import POSITION_BINS

FOLDERS = {"top-k-occurring": "top_k_occurring", "fraction-positive-diff": "fraction_positive_diff"}
HEADLINE_TOKENS = 10

# (pattern, kind, description); the first matching pattern describes a file, so specific ones come first
ARTIFACTS = [
    ("*_global_token_stats.json", "payload", "per token id of one dataset: display string, sum of logit diffs (ft - base), count of positive diffs, counts in the per-position top-K promoted / suppressed"),
    ("*_sequence_likelihood_ratios.json", "payload", "--likelihood-ratios: per sequence, log p_ft - log p_base over its scored next tokens"),
    (INDEX, "payload", "per dataset, every ordering written: ordering_id, display label and file"),
    ("top_k_occurring/*/orderings.json", "payload", "tokens ranked by % of positions where they are among the K most promoted"),
    ("fraction_positive_diff/*/orderings.json", "payload", "tokens ranked by the fraction of positions where the ft logit exceeds the base logit"),
    ("nmf_*/*/orderings.json", "payload", "every NMF topic of the dataset as an ordering (tokens by topic weight)"),
    ("nmf_*/*/topics.json", "payload", "NMF topics: mass, prevalence, pairwise cosine, iterations and backend used"),
    ("nmf_*/*/topic_*_bar.png", "plot", "bar chart of an NMF topic's top tokens by weight"),
    ("nmf_*/*/topic_*_scatter.png", "plot", "an NMF topic's token weights against their average logit diff"),
    ("nmf_*/*/topic_*.json", "payload", "one NMF topic as an ordering (tokens by weight; metadata: mass, prevalence, backend, matrix shape)"),
    ("*/positions.png", "plot", "where in the sequence (16 position bins) the top promoted tokens are in the top-K"),
    ("*_bar.png", "plot", "bar chart of the ordering's top tokens by ordering value"),
    ("*_scatter.png", "plot", "ordering value against average logit diff (ft - base) of the listed tokens"),
]


def nmf_folder(cmd) -> str:
    return f"nmf_{cmd.nmf_mode}_k{cmd.nmf_topics}"


def stats_json(name: str, acc, view) -> dict:
    s = acc.stats
    return {
        "dataset": name, "total_positions": s.total_positions, "top_k": s.top_k, "vocab_size": s.vocab,
        "position_bin_width": s.position_bin_width, "position_bins": POSITION_BINS,
        "token_str": view.strings, "sum_logit_diff": s.sum_diff, "count_positive_diff": s.count_positive,
        "count_topk_positive": s.count_topk_pos, "count_topk_negative": s.count_topk_neg,
    }


def write_outputs(run, cmd, inputs, results) -> None:
    for pattern, kind, text in ARTIFACTS:
        run.describe(pattern, text, kind)
    index: dict[str, list[dict]] = {}
    for res in results.datasets:
        entries = index.setdefault(res.name, [])
        write_json(run.file(f"{res.name}_global_token_stats.json"), stats_json(res.name, res.acc, results.view), indent=None)
        for kind, ordering in res.orderings.items():
            folder = run.file(FOLDERS[kind], res.name)
            write_json(folder / "orderings.json", {"dataset": res.name, "ordering_type": kind, "orderings": [ordering]})
            entries.append({"ordering_id": kind, "display_label": ordering["display_label"],
                            "file": f"{FOLDERS[kind]}/{res.name}/orderings.json"})
            if cmd.plots:
                _plots(ordering, folder, FOLDERS[kind], res, _context(cmd, res.name))
        if "nmf" in cmd.ordering_list:
            _write_nmf(run, cmd, res, entries)
        if cmd.likelihood_ratios:
            write_json(run.file(f"{res.name}_sequence_likelihood_ratios.json"), _ratios(res))
    write_json(run.file(INDEX), index)


def _write_nmf(run, cmd, res, entries: list[dict]) -> None:
    folder = run.file(nmf_folder(cmd), res.name)
    topics = res.topics
    write_json(folder / "orderings.json", {"dataset": res.name, "ordering_type": "nmf", "orderings": res.topic_orderings})
    write_json(folder / "topics.json", {
        "dataset": res.name, "topics": len(res.topic_orderings),
        "mass": topics.mass if topics is not None else [], "prevalence": topics.prevalence if topics is not None else [],
        "pairwise_cosine": topics.cosine if topics is not None else [],
        "iterations": topics.iterations if topics is not None else 0,
        "backend": topics.backend if topics is not None else None,
    })
    for t, ordering in enumerate(res.topic_orderings):
        write_json(folder / f"topic_{t}.json", ordering)
        entries.append({"ordering_id": ordering["ordering_id"], "display_label": ordering["display_label"],
                        "file": f"{nmf_folder(cmd)}/{res.name}/topic_{t}.json"})
        if cmd.plots:
            _plots(ordering, folder, f"topic_{t}", None, _context(cmd, res.name))


def _context(cmd, dataset: str) -> str:
    """"<base> vs <ft> on <dataset>" for the plot titles (the dataset alone when the labels cannot be read)."""
    try:
        base, ft = cmd.compared.labels
    except Exception:  # noqa: BLE001 - a title must never fail a run
        return f"on {dataset}"
    return f"{base} vs {ft} on {dataset}"


def _plots(ordering: dict, folder: Path, stem: str, res, context: str = "") -> None:
    from .plots import ordering_plots, positional_plot

    if not ordering["tokens"]:
        return
    with stage("plots"):  # drawn by core.spine.plot_queue's workers where the machine has the cores, else here
        plot_queue.submit(ordering_plots, ordering, folder, stem, context=context)
        if res is not None and stem == "top_k_occurring":
            top = ordering["tokens"][:8]
            ids = [t["token_id"] for t in top]
            plot_queue.submit(positional_plot, res.acc.stats.position_hist[ids].numpy(),
                              res.acc.stats.position_bin_width, [t["token_str"] for t in top],
                              folder / "positions.png", context)


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
