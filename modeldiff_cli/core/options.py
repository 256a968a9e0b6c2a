"""Shared CLI option types: the same name, default and meaning in every command. No heavy imports here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

Base = Annotated[str | None, typer.Option("--base", help="Base model: local directory, hub id or organism:NAME[:base|ft]. Default: the built-in `cake` organism.")]
Ft = Annotated[str | None, typer.Option("--ft", help="Fine-tuned model (same forms as --base). Default: the `cake` organism's fine-tuned model.")]
Model = Annotated[str | None, typer.Option("--model", help="Model: local directory, hub id or organism:NAME[:base|ft]. Default: the `cake` organism's fine-tuned model.")]
Out = Annotated[Path, typer.Option("--out", help="Root directory of run directories.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto (GPU when present).")]
BaseDevice = Annotated[str | None, typer.Option("--base-device", help="Device of the base model (default: --device).")]
FtDevice = Annotated[str | None, typer.Option("--ft-device", help="Device of the fine-tuned model (default: --device).")]
DeviceMap = Annotated[str | None, typer.Option("--device-map", help="accelerate device_map (e.g. auto) for models larger than one device.")]
Dtype = Annotated[str, typer.Option("--dtype", help="float32, bfloat16, float16 or auto (the checkpoint's dtype). Statistics accumulate in float32.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Recompute and replace an existing run directory.")]
MaxSamples = Annotated[int | None, typer.Option("--max-samples", help="Use at most this many samples per data file.")]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", help="Truncate each sample to this many tokens.")]
TextField = Annotated[str, typer.Option("--text-field", help="JSONL field holding the text (chat files use `messages`).")]
Layer = Annotated[str, typer.Option("--layer", help="Layer: absolute index (12, -1 = last) or relative depth (0.75).")]
ChunkSize = Annotated[int, typer.Option("--chunk-size", min=1, help="Positions read out through lm_head at once (bounds memory).")]

DEFAULT_OUT = Path("runs")


@dataclass
class RunSettings:
    """The shared options of a pair command, as resolved from the CLI (command option classes extend it)."""

    out: Path
    device: str
    base_device: str | None
    ft_device: str | None
    device_map: str | None
    dtype: str
    batch_size: int
    chunk_size: int
    max_samples: int | None
    max_tokens: int | None
    text_field: str
    seed: int
    overwrite: bool
