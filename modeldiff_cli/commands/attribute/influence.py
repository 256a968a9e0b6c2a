"""The classical influence baselines, through the libraries that define them (the optional extra
``pip install modeldiff[influence]``). Imported only when one of these methods runs; ``require`` checks that the
library is installed without importing it.

* ``ekfac`` / ``kfac`` — Kronfluence (Grosse et al. 2023): score(q, z) = ∇θ f(q)ᵀ (G + λI)⁻¹ ∇θ L(z) at the new
  checkpoint, G the (E)K-FAC approximation of the Gauss-Newton Hessian over the training documents' loss,
  over every ``nn.Linear`` of the model (lm_head included); f(q) = the query loss (``--loss``: ce over the answer
  tokens, or the margin), L(z) = the document's next-token cross-entropy (summed over its loss positions).
  ``--damping`` is λ (default Kronfluence's 0.1 × mean eigenvalue). Factors are cached in the vector cache
  under a key of the new checkpoint's and the training data's fingerprints.
* ``trackstar`` — TrackStar (Chang et al. 2024) the way ``bergson trackstar`` builds it, at the new checkpoint:
  Bergson's per-example gradients of every ``nn.Linear`` (lm_head included; mean CE over the loss positions),
  each projected to P × P by a seeded two-sided Rademacher projection (``--projection-dim P``), the train and
  query autocorrelations R = E[ggᵀ] per module mixed with Bergson's λ (``compute_lambda``), both sides multiplied
  by the damped R^(−1/2) (``--trackstar-damping``), unit-normalised; score = cosine. Without its optimizer
  second-moment normaliser (the checkpoints here carry no optimizer state).
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path

from ...core.errors import UserError

LIBRARY = {"ekfac": "kronfluence", "kfac": "kronfluence", "trackstar": "bergson"}
EXTRA = "pip install 'modeldiff[influence]'"


@contextmanager
def alone():
    """Run a library as one process: under torchrun these methods run on rank 0 only (their curvature factors /
    gradient indexes cover every document; the other ranks have stopped), and both libraries reduce over
    ``torch.distributed`` whenever a process group is up (Bergson on CPU too; Kronfluence builds its own NCCL
    group from ``LOCAL_RANK`` on GPUs). Inside, the group is hidden from them and ``LOCAL_RANK`` unset."""
    from ...core.spine import distributed as dist

    if not dist.active():
        yield
        return
    import os

    import torch.distributed as td

    real, saved = td.is_initialized, os.environ.pop("LOCAL_RANK", None)
    td.is_initialized = lambda: False
    try:
        yield
    finally:
        td.is_initialized = real
        if saved is not None:
            os.environ["LOCAL_RANK"] = saved


def require(method: str) -> None:
    lib = LIBRARY.get(method)
    if lib is not None and importlib.util.find_spec(lib) is None:
        raise UserError(f"--method {method}: needs {lib}, not installed; install the extra: {EXTRA}")


def _batch(items, pad_id: int):
    from .extract import collate

    b = collate(items, pad_id, "mean")
    return {"input_ids": b.ids, "attention_mask": b.attn, "tgt": b.tgt, "cands": b.cands}


def kronfluence_scores(new, train_items, query_items, strategy: str, loss: str, damping: float | None,
                       batch_size: int, cache_dir, key: str):
    """``[Q, N]`` Kronfluence pairwise scores (strategy ``ekfac`` or ``kfac``) at the new checkpoint."""
    import copy
    import logging

    import torch
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from kronfluence.utils.dataset import DataLoaderKwargs

    from .extract import sample_losses

    pad_id = new.tokenizer.pad_token_id or 0

    class _Task(Task):
        def compute_train_loss(self, batch, model, sample=False):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            tgt = batch["tgt"]
            if sample:  # true Fisher: labels drawn from the model
                with torch.no_grad():
                    drawn = torch.distributions.Categorical(logits=logits).sample()
                tgt = torch.where(tgt != -100, drawn, tgt)
            logp = torch.log_softmax(logits, -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            return -(logp * (tgt != -100)).sum()

        def compute_measurement(self, batch, model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return sample_losses(logits, batch["tgt"], batch["cands"], loss).sum()

        def get_attention_mask(self, batch):
            return batch["attention_mask"]

    task = _Task()
    model = prepare_model(copy.deepcopy(new.model).float().eval(), task)
    analyzer = Analyzer(f"attribute-{key}", model=model, task=task, cpu=new.device.type == "cpu",
                        disable_tqdm=True, log_level=logging.WARNING, output_dir=str(cache_dir / "kronfluence"))
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(collate_fn=lambda rows: _batch(rows, pad_id)))
    analyzer.fit_all_factors(f"{strategy}", dataset=list(train_items), per_device_batch_size=batch_size,
                             factor_args=FactorArguments(strategy=strategy))
    name = f"{strategy}-{loss}-{damping}"
    analyzer.compute_pairwise_scores(
        name, f"{strategy}", query_dataset=list(query_items),
        train_dataset=list(train_items), per_device_query_batch_size=batch_size,
        per_device_train_batch_size=batch_size, score_args=ScoreArguments(damping_factor=damping),
        overwrite_output_dir=True)
    return analyzer.load_pairwise_scores(name)["all_modules"].double().cpu().numpy()


def _bergson_rows(items):
    """Bergson's records: the full sequence and labels (-100 off the targets; Bergson shifts by one itself)."""
    ids, labels = [], []
    for it in items:
        full = list(it.ids) + [it.targets[-1]] if it.loss_pos and it.loss_pos[-1] == len(it.ids) - 1 else list(it.ids)
        lab = [-100] * len(full)
        for p, t in zip(it.loss_pos, it.targets):
            lab[p + 1] = t
        ids.append(full)
        labels.append(lab)
    return {"input_ids": ids, "labels": labels}


def bergson_gradients(model, items, projection_dim: int, seed: int, workdir, autocorrelation: bool = False,
                      head: bool = True, batch_size: int = 1):
    """``[n, D]`` per-example gradients from Bergson (projected per module, concatenated in sorted module order;
    not normalised) and the module names. ``autocorrelation``: also return Bergson's per-module gradient
    autocorrelation (its ``GradientProcessor`` with ``hessians`` = mean PᵀP over the items and their
    eigendecompositions), the statistic TrackStar preconditions with. ``batch_size``: items per Bergson forward /
    backward (consecutive items, right-padded by Bergson; its hooks still yield one gradient per item — Bergson's
    own default is one item per batch, which made TrackStar the slowest step of a run)."""
    import torch
    from bergson import GradientProcessor, InMemoryCollector
    from bergson.collector.collector import CollectorComputer
    from bergson.config.config import IndexConfig
    from datasets import Dataset

    data = Dataset.from_dict(_bergson_rows(items))
    cfg = IndexConfig(run_path=str(workdir), projection_dim=projection_dim, loss_reduction="mean",
                      projection_seed=seed)
    Path(cfg.partial_run_path).mkdir(parents=True, exist_ok=True)  # Bergson writes its row count there
    proc = GradientProcessor(projection_dim=projection_dim or None, projection_seed=seed)
    collector = InMemoryCollector(model=model if head else model.base_model, cfg=cfg, processor=proc, data=data,
                                  skip_hessians=not autocorrelation)
    import contextlib
    import sys

    # Bergson prints its progress ("Saving hessians...") on stdout, which is the command's output: send it to stderr
    with torch.enable_grad(), contextlib.redirect_stdout(sys.stderr):
        batches = [list(range(i, min(i + batch_size, len(items)))) for i in range(0, len(items), batch_size)]
        CollectorComputer(model=model, data=data, collector=collector, cfg=cfg,
                          batches=batches).run_with_collector_hooks(desc="trackstar")
    names = sorted(collector.gradients)
    grads = torch.cat([collector.gradients[n].float().reshape(len(items), -1) for n in names], 1)
    return (grads, names, proc) if autocorrelation else (grads, names)


def mixed_preconditioner(train_proc, query_proc, downweight: float, damping: float = 0.1):
    """TrackStar's preconditioner as Bergson builds it (``bergson trackstar``: value hessian, query hessian, mix):
    R = λ R_query + (1 − λ) R_train per module, λ from Bergson's ``compute_lambda`` so that the pooled sorted
    eigenvalue curves of λ R_query and (1 − λ) R_train cross at component k (Chang et al. 2024 §A.1.3), then
    Bergson's damped R^(−1/2) (``power=-0.5``, the split form applied to both sides before unit-normalising;
    eigenvalues λ_i → (λ_i + ``damping`` · mean λ)^(−1/2), Bergson's ``damped_inverse``).
    k = ``downweight`` × the number of gradient components (Bergson's default 1000 is ~1.5 % of the ~65 k
    components of its reference setting; a fixed 1000 would exceed a tiny model's rank). Returns
    (preconditioner, λ, k)."""
    from bergson import GradientProcessor
    from bergson.config.config import InversionConfig
    from bergson.hessians.preconditioner import DensePreconditioner
    from bergson.utils.math import compute_lambda

    total = sum(h.shape[0] for h in train_proc.hessians.values())
    k = max(1, round(downweight * total))
    lam = compute_lambda(query_proc.hessians_eigen, train_proc.hessians_eigen, target_components=k)
    mixed = {n: lam * query_proc.hessians[n] + (1 - lam) * train_proc.hessians[n] for n in train_proc.hessians}
    inversion = InversionConfig(inversion="damped_inverse", damping_factor=damping)
    return DensePreconditioner.from_processor(GradientProcessor(hessians=mixed), power=-0.5,
                                              inversion_cfg=inversion), lam, k


def _precondition(pre, grads, names, sizes):
    import torch

    parts = dict(zip(names, torch.split(grads, sizes, dim=1)))
    out = pre.apply(parts)
    return torch.cat([out[n].float() for n in names], 1)


def _quiet_bergson() -> None:
    """Bergson logs its progress at INFO on stdout (the command's output, whose last line is the run directory)
    and sets its loggers back to INFO whenever it builds a collector: a filter drops those records for good."""
    import logging

    class _WarningsOnly(logging.Filter):
        def filter(self, record):
            return record.levelno >= logging.WARNING

    for name in ("CollectorComputer", "HookCollectorBase", "projection_matrix"):
        log = logging.getLogger(name)
        if not any(type(f).__name__ == "_WarningsOnly" for f in log.filters):
            log.addFilter(_WarningsOnly())


# share of the gradient components TrackStar's hessian mixing downweights (Bergson: 1000 of ~65 k ≈ 1.5 %)
DOWNWEIGHT = 1000 / 65536


def trackstar_scores(checkpoints, train_items, query_items, projection_dim: int, seed: int, cache_dir,
                     damping: float = 10.0, downweight: float = DOWNWEIGHT, batch_size: int = 16):
    """``[Q, N]`` TrackStar scores, Bergson's recipe, at each of ``checkpoints`` (``[(label, loaded model)]``):
    per-example projected weight gradients (P × P per module) of every ``nn.Linear`` (lm_head included, as for
    Kronfluence here), the mixed train / query autocorrelation R, both sides multiplied by R^(−1/2),
    unit-normalised, cosine. Several checkpoints: the mean of their cosine scores, each with its own preconditioner
    and the projection seed ``seed + i`` (how Bergson's TRAK ensembles checkpoints). No optimizer second-moment
    normaliser (the checkpoints carry no optimizer state). Returns the scores and a record of the settings
    (damping, the mixing λ and k per checkpoint)."""
    if projection_dim < 1:
        raise UserError("--projection-dim 0: trackstar needs a projection (its preconditioner is a dense "
                        "P²×P² matrix per module, as in `bergson trackstar`); give e.g. --projection-dim 16")
    total, per = None, {}
    for i, (label, loaded) in enumerate(checkpoints):
        sc, info = _trackstar_one(loaded.model, train_items, query_items, projection_dim, seed + i, cache_dir,
                                  damping, downweight, batch_size)
        total = sc if total is None else total + sc
        per[label] = info
    first = next(iter(per.values()))
    record = {"checkpoint": "+".join(per), "damping": damping, "damping_rule": "eigenvalue + damping x mean eigenvalue",
              "downweight_share": downweight, "projection_dim": projection_dim, "modules": first["modules"],
              "lambda": {k: v["lambda"] for k, v in per.items()},
              "downweight_components": first["downweight_components"], "projection_seed": {k: v["seed"] for k, v in per.items()}}
    return total / len(checkpoints), record


def _trackstar_one(net, train_items, query_items, projection_dim: int, seed: int, cache_dir, damping: float,
                   downweight: float, batch_size: int):
    import copy
    import tempfile

    _quiet_bergson()
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(net).float().eval().requires_grad_(True)  # loaded models are frozen
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        t, names, t_proc = bergson_gradients(model, train_items, projection_dim, seed, f"{work}/train", True,
                                             batch_size=batch_size)
        q, _, q_proc = bergson_gradients(model, query_items, projection_dim, seed, f"{work}/queries", True,
                                         batch_size=batch_size)
    pre, lam, k = mixed_preconditioner(t_proc, q_proc, downweight, damping)
    sizes = [t_proc.hessians[n].shape[0] for n in names]
    t, q = _precondition(pre, t, names, sizes), _precondition(pre, q, names, sizes)
    t = t / t.norm(dim=1, keepdim=True).clamp(min=1e-12)
    q = q / q.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return (q.double() @ t.double().T).numpy(), {"lambda": float(lam), "downweight_components": k,
                                                  "modules": len(names), "seed": seed}
