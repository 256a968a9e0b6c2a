"""Write a `mine` run: statistics, orderings, NMF topics, likelihood ratios, plots; print the headline."""

from __future__ import annotations

from pathlib import Path

from ...core import console
from ...core.artifacts import read_json, write_json
from ...core.tokens import visible
from .stats import POSITION_BINS

FOLDERS = {"top-k-occurring": "top_k_occurring", "fraction-positive-diff": "fraction_positive_diff"}


def nmf_folder(o) -> str:
    return f"nmf_{o.nmf_mode}_k{o.nmf_topics}"


def stats_json(name: str, acc, view) -> dict:
    s = acc.stats
    return {
        "dataset": name, "total_positions": s.total_positions, "top_k": s.top_k, "vocab_size": s.vocab,
        "position_bin_width": s.position_bin_width, "position_bins": POSITION_BINS,
        "token_str": view.strings, "sum_logit_diff": s.sum_diff, "count_positive_diff": s.count_positive,
        "count_topk_positive": s.count_topk_pos, "count_topk_negative": s.count_topk_neg,
    }


def write_outputs(run, o, inputs, results, orderings: list[str]) -> None:
    index: dict[str, list[dict]] = {}
    for res in results.datasets:
        entries = index.setdefault(res.name, [])
        write_json(run.file(f"{res.name}_global_token_stats.json"), stats_json(res.name, res.acc, results.view), indent=None)
        for kind, ordering in res.orderings.items():
            folder = run.file(FOLDERS[kind], res.name)
            write_json(folder / "orderings.json", {"dataset": res.name, "ordering_type": kind, "orderings": [ordering]})
            entries.append({"ordering_id": kind, "display_label": ordering["display_label"],
                            "file": f"{FOLDERS[kind]}/{res.name}/orderings.json"})
            if o.plots:
                _plots(ordering, folder, FOLDERS[kind], res)
        if "nmf" in orderings:
            folder = run.file(nmf_folder(o), res.name)
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
                                "file": f"{nmf_folder(o)}/{res.name}/topic_{t}.json"})
                if o.plots:
                    _plots(ordering, folder, f"topic_{t}", None)
        if o.likelihood_ratios:
            write_json(run.file(f"{res.name}_sequence_likelihood_ratios.json"), _ratios(res))
    write_json(run.file("orderings_index.json"), index)
    run.metadata.update({
        "shared_vocab": inputs.shared_vocab, "tokenizer_relation": inputs.report.tokenizer_relation,
        "pair_notes": inputs.report.notes, "extraction": o.extraction, "layer": inputs.layer,
        "n_layers": inputs.n_layers, "two_pass": o.two_pass, "orderings": orderings,
        "token_filters": results.view.filters,
        "nmf_backend_used": {r.name: r.topics.backend for r in results.datasets if r.topics is not None}
        if "nmf" in orderings else None,
        "datasets": [{"name": d.name, "path": str(d.path), "samples": len(d.samples), "positions": r.acc.stats.total_positions}
                     for d, r in zip(inputs.datasets, results.datasets)],
    })


def _plots(ordering: dict, folder: Path, stem: str, res) -> None:
    from .plots import ordering_plots, positional_plot

    if not ordering["tokens"]:
        return
    ordering_plots(ordering, folder, stem)
    if res is not None and stem == "top_k_occurring":
        top = ordering["tokens"][:8]
        ids = [t["token_id"] for t in top]
        positional_plot(res.acc.stats.position_hist[ids], res.acc.stats.position_bin_width,
                        [t["token_str"] for t in top], folder / "positions.png")


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


def headline(path: Path, n: int = 15) -> None:
    """Rich table of the top promoted tokens of each dataset (read back from the run directory)."""
    from rich.table import Table

    index = read_json(path / "orderings_index.json")
    for dataset, entries in index.items():
        entry = next((e for e in entries if e["ordering_id"] == "top-k-occurring"), entries[0] if entries else None)
        if entry is None:
            continue
        ordering = read_json(path / entry["file"])
        ordering = ordering["orderings"][0] if "orderings" in ordering else ordering
        table = Table(title=f"{dataset}: tokens promoted by fine-tuning ({ordering['ordering_id']})")
        for col in ("rank", "token", "value", "avg logit diff", "in top-K +", "in top-K -"):
            table.add_column(col, justify="left" if col == "token" else "right")
        for r, t in enumerate(ordering["tokens"][:n], 1):
            table.add_row(str(r), repr(visible(t["token_str"])), f"{t['ordering_value']:.3f}", f"{t['avg_logit_diff']:+.3f}",
                          str(t["count_positive"]), str(t["count_negative"]))
        console.out.print(table)
