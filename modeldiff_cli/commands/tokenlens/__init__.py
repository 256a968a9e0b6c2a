"""`modeldiff tokenlens`: which input tokens drove each generated token, for one model or base vs fine-tuned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...core import options as opt

app = typer.Typer(help="Token-level input attribution (native batched gradients or inseq), diff mode, benchmarks.",
                  no_args_is_help=True)

NATIVE = ("saliency", "input_x_gradient", "integrated_gradients")  # mirrors engine.NATIVE_METHODS (light import)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tokenlens")


@app.command("attribute")
def attribute(
    model: opt.Model = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="One prompt to continue and attribute.")] = None,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Prompts file: text (one per line) or JSONL with --text-field (optional per-record `target`).")] = None,
    method: Annotated[str, typer.Option("--method", help="Attribution method (`modeldiff tokenlens methods` lists them).")] = "saliency",
    engine: Annotated[str, typer.Option("--engine", help="auto (native for the methods it implements, else inseq), native or inseq.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Greedy continuation length (ignored with --target).")] = 16,
    target: Annotated[str | None, typer.Option("--target", help="Attribute this continuation (teacher forcing) instead of generating.")] = None,
    compare: Annotated[str | None, typer.Option("--compare", help="Diff mode: the base model to compare --model (the fine-tuned one) with, on the same continuation.")] = None,
    score: Annotated[str, typer.Option("--score", help="Attributed output of each step: probability (inseq's default), logit or logprob of the generated token.")] = "probability",
    ig_steps: Annotated[int, typer.Option("--ig-steps", help="Integrated-gradients steps (Gauss-Legendre, as captum/inseq).")] = 50,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Also write the per-prompt JSON here (several prompts: stem_000.json, ...).")] = None,
    html_out: Annotated[Path | None, typer.Option("--html-out", help="Also write the per-prompt HTML view here.")] = None,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 8,
    max_samples: opt.MaxSamples = None,
    text_field: opt.TextField = "text",
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Attribute every generated token of each prompt to the input tokens (prompt and earlier generated tokens).

    Writes per prompt prompt_NNN.json (metadata + association matrices), prompt_NNN.html (heat map; base/ft/diff
    tabs with --compare) and prompt_NNN.inseq.json when inseq ran, plus summary.json; prints the run directory last.
    """
    from .pipeline import AttributeOptions, run

    run(AttributeOptions(
        model=model, compare=compare, prompt=prompt, prompts=prompts, method=method, engine=engine,
        max_new_tokens=max_new_tokens, target=target, score=score, ig_steps=ig_steps, json_out=json_out,
        html_out=html_out, out=out, device=device, dtype=dtype, batch_size=batch_size, max_samples=max_samples,
        text_field=text_field, seed=seed, overwrite=overwrite,
    ))


@app.command("methods")
def methods(as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False) -> None:
    """List inseq's attribution methods and mark those the native batched engine implements."""
    import json

    from ...core import console
    from .inseq_backend import list_methods

    rows = [{"method": m, "native": m in NATIVE, "inseq": True} for m in list_methods()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        console.result(f"{r['method']:36s} {'native + inseq' if r['native'] else 'inseq'}")


@app.command("bench")
def bench(
    models: Annotated[str, typer.Option("--models", help="Comma list of models (directories, hub ids, organism:NAME[:base|ft]).")] = "organism:cake:base,organism:cake:ft",
    methods_: Annotated[str, typer.Option("--methods", help="Comma list of methods.")] = "saliency,input_x_gradient",
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Prompts file (text or JSONL). Default: 4 prompts of the cake organism's data.")] = None,
    engine: Annotated[str, typer.Option("--engine", help="auto, native or inseq (as in attribute).")] = "auto",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Greedy continuation length.")] = 8,
    ig_steps: Annotated[int, typer.Option("--ig-steps", help="Integrated-gradients steps.")] = 16,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 8,
    max_samples: opt.MaxSamples = None,
    text_field: opt.TextField = "text",
    overwrite: opt.Overwrite = False,
) -> None:
    """Run every model x method pair on the prompts: per-prompt timings CSV, success rate per pair, error log
    (a failure does not stop the run), system info and a summary report (text and JSON)."""
    from .bench import BenchOptions, run

    run(BenchOptions(models=models, methods=methods_, prompts=prompts, engine=engine, max_new_tokens=max_new_tokens,
                     ig_steps=ig_steps, out=out, device=device, dtype=dtype, batch_size=batch_size,
                     max_samples=max_samples, text_field=text_field, overwrite=overwrite))
