"""Run the streaming extraction over every dataset, then build the orderings and NMF topics."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import torch

from ...core import console
from ...core.data import iter_batches
from ...core.tokens import special_ids
from .accumulate import Accumulated, accumulate, collect_base_rows
from .extract import Extractor, detached_readout, make_extractor
from .load import Inputs, load_one
from .nmf import DENSE_BUDGET, Topics, choose_backend, fit_topics, sparse_matrix
from .orderings import TokenView, make_ordering, token_view


@dataclass
class DatasetResult:
    name: str
    acc: Accumulated
    orderings: dict[str, dict] = field(default_factory=dict)  # kind -> ordering
    topics: Topics | None = None
    topic_orderings: list[dict] = field(default_factory=list)


@dataclass
class Results:
    view: TokenView
    datasets: list[DatasetResult]


def _batches(o, inputs: Inputs, ds):
    pad = inputs.tokenizer.pad_token_id
    return list(iter_batches(ds.samples, o.batch_size, pad))


def _extractor(o, loaded, layer) -> Extractor:
    return make_extractor(loaded, o.extraction, layer, patchscope_prompt=o.patchscope_prompt,
                          patchscope_layer=o.patchscope_layer, chunk_size=min(o.chunk_size, 256))


def _accumulate_all(o, inputs: Inputs, collect: bool) -> list[Accumulated]:
    kw = dict(vocab=inputs.shared_vocab, top_k=o.top_k, chunk_size=o.chunk_size, collect_records=collect,
              likelihood=o.likelihood_ratios)
    sizes = [(max(s.index for s in d.samples) + 1, max(len(s.ids) for s in d.samples)) for d in inputs.datasets]
    if not o.two_pass:
        base, ft = _extractor(o, inputs.base, inputs.layer), _extractor(o, inputs.ft, inputs.layer)
        return [accumulate(console.track(_batches(o, inputs, d), f"mine {d.name}"), base, ft, n_samples=n, max_len=t, **kw)
                for d, (n, t) in zip(inputs.datasets, sizes)]
    # two-pass: base alone (keep its hidden rows + a copy of its readout), then the fine-tuned model alone
    loaded = load_one(o, inputs.base_source, "--base")
    base = _extractor(o, loaded, inputs.layer)
    stored = [collect_base_rows(console.track(_batches(o, inputs, d), f"base {d.name}"), base) for d in inputs.datasets]
    base = Extractor(base.kind, base.hidden, detached_readout(loaded, o.extraction))
    del loaded
    gc.collect()
    ft = _extractor(o, load_one(o, inputs.ft_source, "--ft"), inputs.layer)
    return [accumulate(console.track(_batches(o, inputs, d), f"ft {d.name}"), base, ft, n_samples=n, max_len=t,
                       base_rows=iter(rows), **kw)
            for d, rows, (n, t) in zip(inputs.datasets, stored, sizes)]


def compute(o, inputs: Inputs, orderings: list[str]) -> Results:
    tok = inputs.tokenizer
    raw = tok.convert_ids_to_tokens(list(range(inputs.shared_vocab)))
    view = token_view(raw, special_ids(tok), filter_punctuation=o.filter_punctuation,
                      filter_special=o.filter_special, consolidate_case=o.consolidate_case)
    accs = _accumulate_all(o, inputs, "nmf" in orderings)
    out = []
    for ds, acc in zip(inputs.datasets, accs):
        res = DatasetResult(ds.name, acc)
        for kind in orderings:
            if kind != "nmf":
                res.orderings[kind] = make_ordering(kind, ds.name, acc.stats, view, o.top_n)
        if "nmf" in orderings:
            res.topics, res.topic_orderings = nmf_orderings(o, ds.name, acc, view)
        out.append(res)
    return Results(view, out)


def nmf_orderings(o, dataset: str, acc: Accumulated, view: TokenView) -> tuple[Topics | None, list[dict]]:
    ids, vals = acc.records.stacked()
    matrix, token_ids = sparse_matrix(ids, vals, view.keep, o.nmf_mode)
    if matrix._nnz() == 0:
        return None, []
    backend = choose_backend(o.nmf_backend, tuple(matrix.shape), o.nmf_orthogonal)
    if backend == "torchnmf" and matrix.shape[0] * matrix.shape[1] > DENSE_BUDGET:
        console.info(f"warning: --nmf-backend torchnmf densifies a {matrix.shape[0]} x {matrix.shape[1]} matrix "
                     f"(> {DENSE_BUDGET:.0e} floats); --nmf-backend auto would use the sparse backend")
    topics = fit_topics(matrix, token_ids, topics=o.nmf_topics, beta=o.nmf_beta, orthogonal=o.nmf_orthogonal,
                        seed=o.seed, max_iter=o.nmf_max_iter, backend=backend)
    stats = acc.stats
    n = max(stats.total_positions, 1)
    result = []
    for t in range(topics.weights.shape[0]):
        w = topics.weights[t]
        order = torch.argsort(-w, stable=True)[: o.top_n]
        toks = []
        for j in order.tolist():
            if w[j] <= 0:
                break
            i = int(topics.token_ids[j])
            toks.append({"token_id": i, "token_str": view.strings[i], "ordering_value": float(w[j]),
                         "avg_logit_diff": float(stats.sum_diff[i] / n), "count_positive": int(stats.count_topk_pos[i]),
                         "count_negative": int(stats.count_topk_neg[i])})
        result.append({
            "ordering_id": f"nmf_topic_{t}", "display_label": f"NMF topic {t} (mass {float(topics.mass[t]):.1%})",
            "tokens": toks,
            "metadata": {"dataset": dataset, "topic": t, "mass": float(topics.mass[t]),
                         "prevalence": float(topics.prevalence[t]), "mode": o.nmf_mode, "beta": o.nmf_beta,
                         "orthogonal": o.nmf_orthogonal, "topics": topics.weights.shape[0], "seed": o.seed,
                         "iterations": topics.iterations, "matrix_entries": topics.n_entries,
                         "matrix_shape": list(matrix.shape), "backend": topics.backend,
                         "backend_requested": o.nmf_backend, **view.filters},
        })
    return topics, result
