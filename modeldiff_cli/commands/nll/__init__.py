"""`modeldiff nll`: per-layer language-modelling quality of two conditions (two models, or two inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...core import options as opt


def register(app: typer.Typer) -> None:
    app.command("nll")(nll)


def nll(
    base: opt.Base = None,
    ft: opt.Ft = None,
    model: Annotated[str | None, typer.Option("--model", help="One model for --pairs (local directory, hub id or organism:NAME[:base|ft]).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Two-model mode: text / JSONL / chat file scored by --base (A) and --ft (B). Default: the cake organism's base data.")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="One-model mode: JSONL of items with token ids (or text) of conditions A and B and aligned positions to score.")] = None,
    hidden_states_dir: Annotated[Path | None, typer.Option("--hidden-states-dir", help="Precomputed hidden states, one <id>.safetensors or <id>.npz per item holding 'a' and 'b' [layers, T, d]; only --model's final norm and lm_head are loaded.")] = None,
    save_hidden_states: Annotated[Path | None, typer.Option("--save-hidden-states", help="With --model --pairs: also write each item's hidden states (the --hidden-states-dir format) to this directory.")] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="Field naming the item (file name in --hidden-states-dir; default: the line number).")] = "id",
    a_field: Annotated[str, typer.Option("--a-field", help="Pairs field with condition A's token ids (or text).")] = "a_ids",
    b_field: Annotated[str, typer.Option("--b-field", help="Pairs field with condition B's token ids (or text).")] = "b_ids",
    a_positions_field: Annotated[str, typer.Option("--a-positions-field", help="Pairs field with A's scored target positions (default: every token but the first).")] = "a_positions",
    b_positions_field: Annotated[str, typer.Option("--b-positions-field", help="Pairs field with B's scored target positions, aligned one-to-one with A's.")] = "b_positions",
    prompt_field: Annotated[str, typer.Option("--prompt-field", help="Two-model mode: prompt field of prompt/completion records.")] = "prompt",
    completion_field: Annotated[str, typer.Option("--completion-field", help="Two-model mode: when every record holds --prompt-field and this field, only the completion's tokens are scored.")] = "completion",
    js_mode: Annotated[str, typer.Option("--js-mode", help="JS divergence between A and B at aligned positions: none, all (every scored position) or last (last scored position per item).")] = "none",
    label_a: Annotated[str | None, typer.Option("--label-a", help="Name of condition A in plots and summary (default: base or A).")] = None,
    label_b: Annotated[str | None, typer.Option("--label-b", help="Name of condition B (default: ft or B).")] = None,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    base_device: opt.BaseDevice = None,
    ft_device: opt.FtDevice = None,
    device_map: opt.DeviceMap = None,
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 8,
    chunk_size: opt.ChunkSize = 256,
    max_samples: opt.MaxSamples = None,
    max_tokens: opt.MaxTokens = None,
    text_field: opt.TextField = "text",
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Per layer: NLL -log p(target) of the next token at the scored positions for conditions A and B, the
    logit-lens score log p(target), optional JS(A, B), over all scored positions and the last one per item.

    Conditions: --base/--ft on one --data file, or one --model on --pairs (optionally from precomputed
    --hidden-states-dir). Writes nll_layer_metrics.csv, nll_matrices.npz, nll_summary.json and PNG curves;
    prints the run directory last.
    """
    from .conditions import PairFields
    from .pipeline import NllOptions, run

    run(NllOptions(
        base=base, ft=ft, model=model, data=data, pairs=pairs, hidden_states_dir=hidden_states_dir,
        save_hidden_states=save_hidden_states,
        fields=PairFields(id_field, a_field, b_field, a_positions_field, b_positions_field),
        prompt_field=prompt_field, completion_field=completion_field, js_mode=js_mode, label_a=label_a, label_b=label_b, out=out,
        device=device, base_device=base_device, ft_device=ft_device, device_map=device_map, dtype=dtype, batch_size=batch_size, chunk_size=chunk_size, max_samples=max_samples,
        max_tokens=max_tokens, text_field=text_field, seed=seed, overwrite=overwrite,
    ))
