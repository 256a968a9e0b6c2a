"""The ingredients every command is built from: each declares its options once and owns its ``load()``.

- :class:`core.spine.compared.Compared` — what is compared: two models, one model, or one model on two conditions
  (its own module: the modes and the spine's rules derived from them).
- :class:`Reading` — how samples are read and batched (text field, sample and token limits, batch size).
- :class:`Data` — one ``--data`` source plus :class:`Reading` (:class:`Datasets`: several); ``load(tokenizer)``
  tokenizes them.
- :class:`Readout` — what a hidden state is read as (logits, logit lens, patchscope), at which layers, in
  chunks of how many positions.
- :class:`TokenFilter` — which tokens orderings and lists leave out.
- :class:`RunOpts` — where runs go, the seed, and whether an existing run is replaced.

Light imports only (``--help`` builds the options from these classes); loading imports torch lazily.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from ..errors import UserError
from .spec import Ingredient, option

DTYPE_NAMES = ("float32", "bfloat16", "float16", "auto")  # --dtype's choices (core.model.loading.resolve_dtype)
DEVICE_FORM = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
CHECKED_RECORDS = 1000  # records of each data source read (and checked) before any model loads


def check_device(spec: str | None, flag: str = "--device") -> None:
    """The form of a ``--device`` value, without torch; whether that device exists is checked (with torch) by
    ``core.model.loading`` before a model's config, tokenizer or weights load."""
    if spec is not None and not DEVICE_FORM.fullmatch(spec.strip().lower()):
        raise UserError(f"{flag} {spec!r}: expected cpu, cuda, cuda:N or auto")


# options that more than one ingredient or command carries: declared once here, used by each
def device_option():
    return option("auto", "--device", "cpu, cuda, cuda:N or auto (GPU when present).", result=False)


def id_field_option(**kw):
    """``--id-field``: the record field naming an item (aligned pairs, training documents)."""
    return option("id", "--id-field", "Record field naming each item (default: the line number when it has none).", **kw)


def device_map_option():
    return option(None, "--device-map", "accelerate device_map (e.g. auto) for models larger than one device.", result=False)


def dtype_option():
    return option("float32", "--dtype", "The models' dtype (auto: the checkpoint's own). Statistics accumulate in float32.", choices=DTYPE_NAMES)


def chunk_size_option():
    """``--chunk-size``: for commands that read positions through lm_head without a :class:`Readout`."""
    return option(None, "--chunk-size", "Positions read out through lm_head at once (bounds peak memory at chunk x vocab floats). Default auto: 256 on CPU; on a GPU as many as 512 MiB of float32 logits hold.", min=1, result=False)


def checkpoint_every_option():
    """``--checkpoint-every N``: resumable long runs (``core.spine.checkpoint``); not part of the run configuration."""
    return option(0, "--checkpoint-every", "Save the accumulators every N batches into the partial run directory; re-running the same command after an interruption resumes there (0 = off).", min=0, result=False, when="resumable", panel="Run")


@dataclass(frozen=True)
class Reading(Ingredient):
    """How samples are read and batched (commands whose inputs have their own flags, e.g. ``--train``)."""

    panel = "Data"

    text_field: str = option("text", "--text-field", "Field (JSONL) or column (CSV, Parquet, datasets) holding the text; chat files use `messages`.")
    max_samples: int | None = option(None, "--max-samples", "Use at most this many samples per data source (large sources are streamed).", min=1)
    max_tokens: int | None = option(256, "--max-tokens", "Truncate each sample to this many tokens.", min=2)
    batch_size: int = option(8, "--batch-size", "Sequences per forward pass.", min=1, result=False)


SOURCE_HELP = ("Text / JSONL / chat JSONL / CSV / Parquet file, a datasets.save_to_disk directory, or "
               "hf:NAME[:CONFIG][:SPLIT]")


@dataclass(frozen=True)
class Data(Reading):
    """One input data source: a file (text, JSONL, chat JSONL, CSV, Parquet), a saved dataset or
    ``hf:NAME[:CONFIG][:SPLIT]``. Commands that analyse several sources, each on its own, take :class:`Datasets`."""

    several: ClassVar[bool] = False  # more than one --data (Datasets)

    data: tuple[str, ...] = option((), "--data", SOURCE_HELP + ". Default: the command's organism data.", data=True, result=False, metavar="<source>")

    def __post_init__(self):
        if len(self.data) > 1 and not self.several:
            raise UserError(f"--data: this command takes one data source (got {len(self.data)})")

    @cached_property
    def names(self) -> tuple[str, ...]:
        from ..data.datasource import dataset_name

        names: list[str] = []
        for spec in self.data:
            base, name, k = dataset_name(spec), dataset_name(spec), 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
        return tuple(names)

    def fingerprint(self) -> dict:
        from ..data.datasource import source_fingerprint

        return {"data": {name: source_fingerprint(spec, self.text_field, self.max_samples, self.max_tokens)
                         for name, spec in zip(self.names, self.data, strict=True)}}

    def preflight(self) -> None:
        """Before any model loads (``core.spine.command``): the first ``CHECKED_RECORDS`` records of every source are
        read, so a wrong ``--text-field``, malformed JSON or an empty file is exit 2 at once. A hub dataset read
        online (streamed) is left to loading."""
        from ..data.datasource import hub_offline, parse_source, read_records

        limit = min(self.max_samples or CHECKED_RECORDS, CHECKED_RECORDS)
        for spec in self.data:
            if parse_source(spec).kind == "hf" and not hub_offline():
                continue
            read_records(spec, self.text_field, "--data", max_samples=limit)

    def load(self, tokenizer, *, positions_before: int = 0):
        """Tokenize every source: a list of :class:`core.data.datasets.Dataset` named as in the run directory."""
        from ..data.datasets import load_dataset

        out = []
        for name, spec in zip(self.names, self.data, strict=True):
            ds = load_dataset(spec, tokenizer, text_field=self.text_field, max_samples=self.max_samples,
                              max_tokens=self.max_tokens, positions_before=positions_before)
            ds.name = name
            out.append(ds)
        return out


@dataclass(frozen=True)
class Datasets(Data):
    """Several input data sources, each analysed on its own (``mine``, ``interpret``)."""

    several: ClassVar[bool] = True

    data: tuple[str, ...] = option((), "--data", SOURCE_HELP + "; repeat for several, each analysed on its own. Default: the command's organism data.", data=True, result=False, metavar="<source>...")


READOUTS = ("logits", "logit-lens", "patchscope")


@dataclass(frozen=True)
class Readout(Ingredient):
    """What a hidden state is read as, where, and in chunks of how many positions."""

    panel = "Readout"

    readout: str = option("logits", "--readout", "logits (the model's output), logit-lens (layer state -> final norm -> lm_head) or patchscope (layer state patched into an identity prompt, one decode step).", choices=READOUTS)
    layers: str | None = option(None, "--layers", "Layers: all, or a comma list of indices (12, -1 = last), relative depths (0.75) and a:b ranges (end exclusive), e.g. 0,0.5,-1 or 2:8. Commands reading one layer take one selector.", aliases=("--layer",))
    patchscope_prompt: str | None = option(None, "--patchscope-prompt", "Identity prompt of patchscope; its last '?' is the patched position.")
    patchscope_layer: str | None = option(None, "--patchscope-layer", "Layer patched in the identity prompt (default: the layer read).")
    chunk_size: int | None = chunk_size_option()

    def allow(self, *kinds: str) -> None:
        """Restrict the readouts a command accepts."""
        if self.readout not in kinds:
            raise UserError(f"--readout {self.readout!r}: this command takes {', '.join(kinds)}")

    def resolve_layers(self, n_layers: int, default: str = "all") -> list[int]:
        from ..model.arch import resolve_layers

        return resolve_layers(self.layers if self.layers is not None else default, n_layers, "--layers")

    def resolve_layer(self, n_layers: int, default: str = "-1") -> int:
        """The one layer of a single-layer readout."""
        layers = self.resolve_layers(n_layers, default)
        if len(layers) != 1:
            raise UserError(f"--layers {self.layers}: this command reads one layer (got {len(layers)})")
        return layers[0]


@dataclass(frozen=True)
class TokenFilter(Ingredient):
    """Tokens left out of orderings and token lists (the analysis itself always sees every token)."""

    panel = "Tokens"

    drop_punctuation: bool = option(False, "--drop-punctuation/--keep-punctuation", "Leave punctuation-only tokens out of the token lists.", old=("--filter-punctuation",))
    drop_special: bool = option(True, "--drop-special/--keep-special", "Leave special tokens (bos, eos, pad) out of the token lists.", old=("--filter-special",))
    drop_undecodable: bool = option(True, "--drop-undecodable/--keep-undecodable", "Leave tokens that are not text on their own (byte fragments of a multi-byte character, shown as \ufffd) out of the token lists.")
    consolidate_case: bool = option(False, "--consolidate-case", "Merge tokens equal after stripping and lower-casing (' Cake', 'cake').")

    def keep_mask(self, tokenizer, vocab_size: int) -> list[bool]:
        """Per-id flag of tokens that survive the filters (the one implementation: ``core.data.token_views``)."""
        from ..data.token_views import view_of

        return view_of(tokenizer, vocab_size, self).keep.tolist()


@dataclass(frozen=True)
class RunOpts(Ingredient):
    """Where the run directory goes and how it is made."""

    panel = "Run"

    out: Path = option(Path("runs"), "--out", "Root directory of run directories.", result=False)
    seed: int = option(0, "--seed", "Random seed (same seed, same result).")
    overwrite: bool = option(False, "--overwrite", "Recompute and replace an existing run directory.", result=False)
    profile: bool = option(False, "--profile", "Print where the run's time and memory went (stages, peak memory) at the end; always recorded in run_metadata.json.", result=False)
