"""The mine pipeline's steps: load (pair, layer, data) -> accumulate (streaming diffs) -> order (orderings, NMF)."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import torch

from ...core.data.datasets import Dataset, iter_batches
from ...core.data.token_views import TokenView, view_of
from ...core.errors import UserError
from ...core.model.loading import LoadedModel, PairReport
from ...core.spine import checkpoint, console
from ...core.spine import distributed as dist
from ...core.spine.timing import stage
from .accumulate import Accumulated, accumulate, collect_base_rows, reduce_ranks
from .extract import Extractor, detached, make_extractor
from .nmf import DENSE_BUDGET, Topics, choose_backend, fit_topics, sparse_matrix
from .orderings import make_ordering, nmf_ordering


@dataclass
class Inputs:
    """What the run reads: the pair's report and tokenizer, the layer, the datasets, and the resident models
    (both; or, with --two-pass, none until :func:`accumulate_all` loads them one at a time)."""

    report: PairReport
    tokenizer: object
    n_layers: int
    layer: int | None
    datasets: list[Dataset]
    base: LoadedModel | None = None
    ft: LoadedModel | None = None

    @property
    def shared_vocab(self) -> int:
        return self.report.shared_vocab


@dataclass
class DatasetResult:
    name: str
    acc: Accumulated
    orderings: dict[str, dict] = field(default_factory=dict)  # kind -> ordering
    topics: Topics | None = None
    topic_orderings: list[dict] = field(default_factory=list)
    matrix_shape: list[int] | None = None


@dataclass
class Results:
    view: TokenView
    datasets: list[DatasetResult]


def load(cmd) -> Inputs:
    """Both models resident (``Compared.load``); with --two-pass only their configs and tokenizers are checked here
    and the base model is loaded for its tokenizer and depth (it is used, then freed, by pass 1)."""
    if cmd.two_pass:
        report = cmd.compared.check()
        base, ft = cmd.compared.load_one("base"), None
    else:
        pair = cmd.compared.load()
        report, base, ft = pair.report, pair.base, pair.ft
    if cmd.top_k > report.shared_vocab:
        raise UserError(f"--top-k {cmd.top_k}: larger than the vocabulary the models share ({report.shared_vocab} tokens)")
    n_layers = base.adapter.n_layers
    layer = cmd.readout.resolve_layer(n_layers) if cmd.readout.readout != "logits" else None
    datasets = cmd.data.load(base.tokenizer)
    return Inputs(report, base.tokenizer, n_layers, layer, datasets, base, ft)


def _extractor(cmd, loaded: LoadedModel, layer: int | None) -> Extractor:
    r = cmd.readout
    return make_extractor(loaded, r.readout, layer, chunk_size=r.chunk_size, patchscope_prompt=r.patchscope_prompt,
                          patchscope_layer=r.patchscope_layer)


def _batches(cmd, inputs: Inputs, ds: Dataset) -> list:
    """This rank's batches of ``ds``: a contiguous block of the one-process run's batches (all of them with one
    process), so every forward is the one-process run's."""
    return dist.shard(list(iter_batches(ds.samples, cmd.data.batch_size, inputs.tokenizer.pad_token_id)))


def accumulate_all(cmd, inputs: Inputs) -> list[Accumulated]:
    """Every dataset streamed through both models (this rank's shard), then summed over ranks; a non-zero rank
    stops there (``dist.handoff``). --two-pass: pass 1 runs the base model alone (keeping its hidden rows and a
    copy of its final norm / lm_head), frees it, then pass 2 loads and runs the ft model."""
    accs = [reduce_ranks(acc) for acc in _accumulate_shard(cmd, inputs)]
    dist.handoff()
    return accs


def _accumulate_shard(cmd, inputs: Inputs) -> list[Accumulated]:
    kw = dict(vocab=inputs.shared_vocab, top_k=cmd.top_k, chunk_size=cmd.readout.chunk_size,
              collect_records="nmf" in cmd.ordering_list, likelihood=cmd.likelihood_ratios)
    sizes = [(max(s.index for s in d.samples) + 1, max(len(s.ids) for s in d.samples)) for d in inputs.datasets]
    shards = [_batches(cmd, inputs, d) for d in inputs.datasets]
    for shard in shards:
        dist.count_samples(sum(len(b.sample_index) for b in shard))
    every = getattr(cmd, "checkpoint_every", 0)
    if not cmd.two_pass:
        base, ft = _extractor(cmd, inputs.base, inputs.layer), _extractor(cmd, inputs.ft, inputs.layer)
        store = checkpoint.store(every, {"command": "mine", "batches": [len(s) for s in shards]})
        state = store.load() if store is not None else None
        accs: list[Accumulated] = list(state["accs"]) if state else []
        first, skip = state["position"] if state else (0, 0)
        step = sum(len(s) for s in shards[:first]) + skip
        for di in range(first, len(inputs.datasets)):
            d, (n, t), shard = inputs.datasets[di], sizes[di], shards[di]
            done = skip if di == first else 0
            resumed = accs.pop() if di == first and skip > 0 else None

            at = [done]  # batches of this dataset's shard done

            def after(acc: Accumulated, di: int = di, at: list[int] = at) -> None:
                nonlocal step
                step, at[0] = step + 1, at[0] + 1
                if store is not None and store.due(step):
                    store.save(step, {"accs": [*accs, acc], "position": (di, at[0])})

            accs.append(accumulate(console.track(shard[done:], f"mine {d.name}"), base, ft, n_samples=n,
                                   max_len=t, start=resumed, after_batch=after, **kw))
        if store is not None:
            store.save(step, {"accs": accs, "position": (len(inputs.datasets), 0)})
        return accs
    if every:
        console.info("warning: --checkpoint-every: not with --two-pass (the run is not checkpointed)")
    base = _extractor(cmd, inputs.base, inputs.layer)
    stored = [collect_base_rows(console.track(shard, f"base {d.name}"), base)
              for d, shard in zip(inputs.datasets, shards, strict=True)]
    base = detached(base, inputs.base)
    inputs.base = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    inputs.ft = cmd.compared.load_one("ft")
    ft = _extractor(cmd, inputs.ft, inputs.layer)
    return [accumulate(console.track(shard, f"ft {d.name}"), base, ft, n_samples=n, max_len=t,
                       base_rows=iter(rows), **kw)
            for d, shard, rows, (n, t) in zip(inputs.datasets, shards, stored, sizes, strict=True)]


def order(cmd, inputs: Inputs, accs: list[Accumulated]) -> Results:
    """The orderings (and NMF topics) of every dataset, through the token view of the filters."""
    view = view_of(inputs.tokenizer, inputs.shared_vocab, cmd.tokens)
    out = []
    for ds, acc in zip(inputs.datasets, accs, strict=True):
        res = DatasetResult(ds.name, acc)
        for kind in cmd.ordering_list:
            if kind != "nmf":
                res.orderings[kind] = make_ordering(kind, ds.name, acc.stats, view, cmd.top_n)
        if "nmf" in cmd.ordering_list:
            with stage("nmf"):
                nmf_topics(cmd, res, view)
        out.append(res)
    return Results(view, out)


def nmf_topics(cmd, res: DatasetResult, view: TokenView) -> None:
    """NMF of the dataset's top-K positive records (kept tokens only); one ordering per topic."""
    ids, vals = res.acc.records.stacked()
    matrix, token_ids = sparse_matrix(ids, vals, view.keep, cmd.nmf_mode)
    if matrix._nnz() == 0:
        return
    backend = choose_backend(cmd.nmf_backend, tuple(matrix.shape), cmd.nmf_orthogonal)
    if backend == "torchnmf" and matrix.shape[0] * matrix.shape[1] > DENSE_BUDGET:
        console.info(f"warning: --nmf-backend torchnmf densifies a {matrix.shape[0]} x {matrix.shape[1]} matrix "
                     f"(> {DENSE_BUDGET:.0e} floats); --nmf-backend auto would use the sparse backend")
    res.topics = fit_topics(matrix, token_ids, topics=cmd.nmf_topics, beta=cmd.nmf_beta, orthogonal=cmd.nmf_orthogonal,
                            seed=cmd.run.seed, max_iter=cmd.nmf_max_iter, backend=backend)
    res.matrix_shape = list(matrix.shape)
    settings = {"mode": cmd.nmf_mode, "beta": cmd.nmf_beta, "orthogonal": cmd.nmf_orthogonal, "seed": cmd.run.seed,
                "matrix_shape": res.matrix_shape, "backend_requested": cmd.nmf_backend}
    res.topic_orderings = [nmf_ordering(t, res.name, res.topics, res.acc.stats, view, cmd.top_n, settings)
                           for t in range(res.topics.weights.shape[0])]
