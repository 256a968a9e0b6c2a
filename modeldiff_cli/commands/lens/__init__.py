"""`modeldiff lens`: at which layer does the fine-tuning difference appear, and what does each layer "think"?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...core import options as opt


def register(app: typer.Typer) -> None:
    app.command("lens")(lens)


def lens(
    base: opt.Base = None,
    ft: opt.Ft = None,
    data: Annotated[Path | None, typer.Option("--data", help="Text, JSONL or chat JSONL file. Default: the cake organism's base data.")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Single-prompt mode: also draw the per-position x per-layer top-token table of each model.")] = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Layers to read out: all (default), or a comma list of indices / relative depths / a:b ranges, e.g. 0,0.5,-1 or 2:8.")] = None,
    method: Annotated[str, typer.Option("--method", help="logit-lens (final norm + lm_head on the layer's hidden state) or patchscope (identity prompt, patched layer, one decode step).")] = "logit-lens",
    positions: Annotated[str, typer.Option("--positions", help="Positions analysed in each sample: all (selected by the data: every token, or assistant tokens of chats) or last.")] = "all",
    top_n: Annotated[int, typer.Option("--top-n", help="Promoted / suppressed tokens listed per layer.")] = 20,
    drop_punctuation: Annotated[bool, typer.Option("--drop-punctuation", help="Leave punctuation-only tokens out of the promoted lists.")] = False,
    keep_special: Annotated[bool, typer.Option("--keep-special", help="Keep special tokens (bos, eos, pad) in the promoted lists.")] = False,
    patchscope_prompt: Annotated[str | None, typer.Option("--patchscope-prompt", help="Identity prompt of --method patchscope (default: core.patchscope's).")] = None,
    patchscope_layer: Annotated[str | None, typer.Option("--patchscope-layer", help="Layer patched in the identity prompt (default: core.patchscope's).")] = None,
    out: opt.Out = opt.DEFAULT_OUT,
    device: opt.Device = "auto",
    base_device: opt.BaseDevice = None,
    ft_device: opt.FtDevice = None,
    device_map: opt.DeviceMap = None,
    dtype: opt.Dtype = "float32",
    batch_size: opt.BatchSize = 8,
    chunk_size: opt.ChunkSize = 256,
    max_samples: opt.MaxSamples = None,
    max_tokens: opt.MaxTokens = 256,
    text_field: opt.TextField = "text",
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Per layer, both models' logit-lens distributions at the analysed positions: mean KL(ft || base), each
    model's KL from its own final output, top-1 agreement, and the tokens ft promotes most over base.

    Writes layer_metrics.csv/.json, lens_matrices.npz, promoted_tokens.json, kl_by_layer.png,
    agreement_by_layer.png (and prompt_top_tokens.json/.png with --prompt); prints the run directory last.
    """
    from .pipeline import LensOptions, run

    run(LensOptions(
        base=base, ft=ft, data=data, prompt=prompt, layers=layers, method=method, positions=positions,
        top_n=top_n, drop_punctuation=drop_punctuation, keep_special=keep_special,
        patchscope_prompt=patchscope_prompt, patchscope_layer=patchscope_layer, out=out, device=device,
        base_device=base_device, ft_device=ft_device, device_map=device_map, dtype=dtype, batch_size=batch_size, chunk_size=chunk_size, max_samples=max_samples, max_tokens=max_tokens,
        text_field=text_field, seed=seed, overwrite=overwrite,
    ))
