"""`modeldiff attribute`: which training documents made the new checkpoint answer a query differently from
the old one? Scores every (query, training document) pair by comparing pooled Δh / gradient vectors, by
causal patching, or by text baselines, and scores the rankings against ground truth. Light imports only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...core import options as opt

METHOD_HELP = "Comma list of: delta-h, grad, delta-h-x-grad, ig, patch, bm25, edit-distance, random."


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="attribute", help=__doc__.split("Light imports")[0], add_completion=False,
                        context_settings={"help_option_names": ["-h", "--help"]})
    group.callback(invoke_without_command=True)(attribute)
    group.command("queries")(build_queries_command)
    app.add_typer(group, name="attribute")


def attribute(
    ctx: typer.Context,
    old: Annotated[str | None, typer.Option("--old", help="Old checkpoint (directory, hub id or organism:NAME[:base|ft]). Default: the hops organism's old model.")] = None,
    new: Annotated[str | None, typer.Option("--new", help="New checkpoint, trained further on --train. Default: the hops organism's new model.")] = None,
    train: Annotated[Path | None, typer.Option("--train", help="JSONL of training documents (text + id fields; hops: func, role, constant) used between old and new. Default: the hops organism's new_train.")] = None,
    queries_file: Annotated[Path | None, typer.Option("--queries", help="JSONL of test queries (prompt + completion fields; optional func, role, relevant, candidates). Default: the hops organism's queries.")] = None,
    method: Annotated[str, typer.Option("--method", help=METHOD_HELP)] = "delta-h,grad,delta-h-x-grad,bm25,edit-distance,random",
    layers: Annotated[str | None, typer.Option("--layers", help="Layers: all (default) or a comma list of indices / relative depths / a:b ranges.")] = None,
    pooling: Annotated[str, typer.Option("--pooling", help="Per-sample pooling: last, mean or span (the loss / answer positions); TRAIN:QUERY sets each side, e.g. mean:span.")] = "span",
    loss: Annotated[str, typer.Option("--loss", help="Loss for gradients: ce (next-token loss on the answer / document) or margin (target logit vs the candidate answers; documents fall back to ce).")] = "ce",
    ig_steps: Annotated[int, typer.Option("--ig-steps", help="Riemann steps of integrated gradients (method ig).")] = 8,
    gate_percentile: Annotated[float, typer.Option("--gate-percentile", help="patch: percent of hidden dimensions gated per candidate (top |Δh ⊙ g|).")] = 10.0,
    patch_pool: Annotated[int, typer.Option("--patch-pool", help="patch: documents patched per query (its top N by delta-h-x-grad; the rest score -inf).")] = 50,
    aggregate: Annotated[str, typer.Option("--aggregate", help="Layer aggregation: mean, top3 (mean of each pair's 3 best layers) or all (one cosine over concatenated layers).")] = "mean",
    zscore: Annotated[bool, typer.Option("--zscore", help="Standardise each query's scores per layer before aggregating.")] = False,
    ks: Annotated[str, typer.Option("--k", help="Cut-offs of recall@k / precision@k / top-k composition.")] = "1,5,10,20,50",
    text_field: opt.TextField = "text",
    id_field: Annotated[str, typer.Option("--id-field", help="JSONL field holding each record's id.")] = "uid",
    prompt_field: Annotated[str, typer.Option("--prompt-field", help="Query field holding the prompt.")] = "prompt",
    answer_field: Annotated[str, typer.Option("--answer-field", help="Query field holding the expected answer (its tokens form the answer span).")] = "completion",
    ground_truth: Annotated[Path | None, typer.Option("--ground-truth", help="JSON with a 'functions' table {func: {role, partner, doc_uids}} (default: the organism's, or inferred from func/role/constant fields).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache of pooled vectors (safetensors). Default: OUT/attribute-cache.")] = None,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 16,
    max_samples: opt.MaxSamples = None,
    max_tokens: opt.MaxTokens = 256,
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Rank the training documents by their influence on each query and score the rankings.

    Writes scores_{method}.npz, rankings.jsonl, influence_scores.jsonl, metrics.json, metrics.csv,
    recall_at_k.png and metrics.md; prints the metrics table, then the run directory last.
    Subcommand `queries` builds query files.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .pipeline import AttributeOptions, run

    run(AttributeOptions(
        old=old, new=new, train=train, queries=queries_file, method=method, layers=layers, pooling=pooling,
        loss=loss, ig_steps=ig_steps, gate_percentile=gate_percentile, patch_pool=patch_pool, aggregate=aggregate,
        zscore=zscore, ks=ks, text_field=text_field, id_field=id_field, prompt_field=prompt_field, answer_field=answer_field,
        ground_truth=ground_truth, cache_dir=cache_dir, out=out, device=device, dtype=dtype,
        batch_size=batch_size, max_samples=max_samples, max_tokens=max_tokens, seed=seed, overwrite=overwrite,
    ))


def build_queries_command(
    data: Annotated[Path | None, typer.Option("--data", help="Hops-style JSONL (records with func, role, constant). Default: the hops organism's train data.")] = None,
    template: Annotated[str, typer.Option("--template", help="Query text; {F} = function name, {x} = input.")] = "{F}({x}) returns the value ",
    model: opt.Model = None,
    inputs: Annotated[str, typer.Option("--inputs", help="Comma list of inputs x substituted for {x}.")] = "1,2,3,4,5,6,7,8",
    text_field: opt.TextField = "text",
    include_distractors: Annotated[bool, typer.Option("--include-distractors", help="Also build queries on distractor functions.")] = False,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 16,
    overwrite: opt.Overwrite = False,
) -> None:
    """Build queries per function with their expected constant; with --model keep only those the model answers
    correctly among the candidate constants. Writes queries.jsonl (kept), all_queries.jsonl, kept_counts.csv/json."""
    from .queries import QueryOptions, run

    run(QueryOptions(data=data, template=template, model=model, inputs=inputs, text_field=text_field,
                     include_distractors=include_distractors, out=out, device=device, dtype=dtype,
                     batch_size=batch_size, overwrite=overwrite))
