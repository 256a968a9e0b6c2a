"""Typer group of `modeldiff mine` (the main run) and `modeldiff mine overview`. No heavy imports here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ...core import options as opt

mine_app = typer.Typer(
    name="mine", invoke_without_command=True, no_args_is_help=False, add_completion=False,
    help="Which tokens did fine-tuning promote or suppress? Streaming logit-diff mining with orderings.",
)


@mine_app.callback(invoke_without_command=True)
def mine(
    ctx: typer.Context,
    base: opt.Base = None,
    ft: opt.Ft = None,
    data: Annotated[Optional[list[Path]], typer.Option("--data", help="Text / JSONL / chat JSONL file; repeat for several datasets. Default: the cake organism's base data.")] = None,
    extraction: Annotated[str, typer.Option("--extraction", help="logits (model outputs), logit-lens (layer state -> final norm -> lm_head) or patchscope (layer state patched into an identity prompt).")] = "logits",
    layer: Annotated[Optional[str], typer.Option("--layer", help="Layer of logit-lens / patchscope: index (12, -1 = last) or relative depth (0.75). Default: last.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="K of the per-position top-K promoted / suppressed tokens.")] = 100,
    top_n: Annotated[int, typer.Option("--top-n", help="Tokens listed per ordering.")] = 100,
    orderings: Annotated[str, typer.Option("--orderings", help="Comma list of top-k-occurring, fraction-positive-diff, nmf.")] = "top-k-occurring,fraction-positive-diff,nmf",
    nmf_mode: Annotated[str, typer.Option("--nmf-mode", help="NMF matrix entries: binary (1 per top-K entry) or magnitude (the logit diff).")] = "binary",
    nmf_topics: Annotated[int, typer.Option("--nmf-topics", help="Number of NMF topics.")] = 5,
    nmf_beta: Annotated[float, typer.Option("--nmf-beta", help="NMF beta-divergence: 1 = KL, 2 = Frobenius.")] = 2.0,
    nmf_orthogonal: Annotated[float, typer.Option("--nmf-orthogonal", help="Weight of the orthogonality penalty between topics (0 = off).")] = 0.0,
    nmf_max_iter: Annotated[int, typer.Option("--nmf-max-iter", min=1, help="Maximum NMF iterations.")] = 100,
    nmf_backend: Annotated[str, typer.Option("--nmf-backend", help="NMF solver: torchnmf (dense column-compressed matrix), sparse (same updates on CSR; needed for --nmf-orthogonal) or auto (torchnmf when positions x distinct tokens <= 4e6 and no orthogonality).")] = "auto",
    filter_punctuation: Annotated[bool, typer.Option("--filter-punctuation/--keep-punctuation", help="Leave punctuation-only tokens out of the orderings.")] = False,
    filter_special: Annotated[bool, typer.Option("--filter-special/--keep-special", help="Leave special tokens (bos, eos, pad) out of the orderings.")] = True,
    consolidate_case: Annotated[bool, typer.Option("--consolidate-case", help="Merge tokens equal after stripping and lower-casing (' Cake', 'cake').")] = False,
    likelihood_ratios: Annotated[bool, typer.Option("--likelihood-ratios", help="Also write per-sequence log-likelihood ratios log p_ft - log p_base.")] = False,
    two_pass: Annotated[bool, typer.Option("--two-pass", help="Load one model at a time: keep the base model's hidden states, recompute its logits (same results).")] = False,
    patchscope_prompt: Annotated[Optional[str], typer.Option("--patchscope-prompt", help="Identity prompt of --extraction patchscope; its last '?' is the patched position.")] = None,
    patchscope_layer: Annotated[Optional[str], typer.Option("--patchscope-layer", help="Layer patched in the identity prompt (default: --layer).")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the PNG plots.")] = True,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    base_device: opt.BaseDevice = None,
    ft_device: opt.FtDevice = None,
    device_map: opt.DeviceMap = None,
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 8,
    chunk_size: opt.ChunkSize = 1024,
    max_samples: opt.MaxSamples = None,
    max_tokens: opt.MaxTokens = 128,
    text_field: opt.TextField = "text",
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Per position, diff = ft - base logits; per token, how often it is among the top-K promoted, how often
    its logit rises, and NMF topics of promoted tokens. Writes {dataset}_global_token_stats.json and the
    orderings (top_k_occurring/, fraction_positive_diff/, nmf_*/) with plots; prints the top promoted
    tokens and the run directory last. `modeldiff mine overview RUN_DIR` builds an agent payload."""
    if ctx.invoked_subcommand is not None:
        return
    from .pipeline import MineOptions, run

    run(MineOptions(
        base=base, ft=ft, data=list(data or []), extraction=extraction, layer=layer, top_k=top_k, top_n=top_n,
        orderings=orderings, nmf_mode=nmf_mode, nmf_topics=nmf_topics, nmf_beta=nmf_beta,
        nmf_orthogonal=nmf_orthogonal, nmf_max_iter=nmf_max_iter, nmf_backend=nmf_backend,
        filter_punctuation=filter_punctuation,
        filter_special=filter_special, consolidate_case=consolidate_case, likelihood_ratios=likelihood_ratios,
        two_pass=two_pass, patchscope_prompt=patchscope_prompt, patchscope_layer=patchscope_layer, plots=plots,
        out=out, device=device, base_device=base_device, ft_device=ft_device, device_map=device_map, dtype=dtype, batch_size=batch_size, chunk_size=chunk_size, max_samples=max_samples,
        max_tokens=max_tokens, text_field=text_field, seed=seed, overwrite=overwrite,
    ))


@mine_app.command("overview")
def overview(
    run_dir: Annotated[Path, typer.Argument(help="A complete `modeldiff mine` run directory.")],
    token_budget: Annotated[int, typer.Option("--token-budget", help="Total tokens listed in the payload, split across datasets and ordering groups.")] = 200,
) -> None:
    """The JSON payload an LLM agent is given: per anonymised dataset (ds1, ds2, ...) the token groups of each
    ordering within a token budget, plus the run's metadata. Writes overview_budget{N}.json into RUN_DIR."""
    from .overview import run_overview

    run_overview(run_dir, token_budget)
