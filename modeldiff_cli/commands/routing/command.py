"""The `routing` command: its ingredients, its own options, and ``execute()`` — the pipeline, top to bottom."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import DATA_AB, PAIRS, Compared
from ...core.spine.ingredients import Data
from ...core.spine.spec import option
from ...core.spine.timing import stage
from .artifacts import ARTIFACTS, worded


def parse_sweep(text: str | None) -> list[int]:
    if text is None or not str(text).strip():
        return []
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sweep {text!r}: expected a comma list of expert counts, e.g. 1,2,4,8") from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"--sweep {text!r}: counts must be at least 1")
    return sorted(set(values))


MASK_MODES = ("keep-topk", "replace-topk", "deactivate")  # core.model.routers.MASK_MODES (light import here)


def parse_modes(text: str) -> list[str]:
    """The mask modes of ``--sweep-mode`` (checked by its option's choices), each once."""
    return list(dict.fromkeys(m.strip() for m in str(text).split(",") if m.strip()))


@dataclass(frozen=True)
class Routing(Command):
    """Which experts each MoE layer routes tokens to, compared between two models on the same tokens
    (--base/--ft --data), two datasets on one model (--model --data-a --data-b) or aligned pairs (--model --pairs):
    usage per layer x expert (weight usage, slot fraction, mean router probability) in the all / last / first-N
    (/ assistant) views, per-layer TV / Jaccard / intersection of the top-k sets, top-1 agreement, JS, entropy,
    a z-test with Benjamini-Hochberg q per cell, and with --sweep the mask sweep (mask the top experts, measure
    how much of the difference is undone, against random experts). Without arguments: the moe organism, base vs
    ft on its planted data; prints the run directory last."""

    name = "routing"
    resumable = True
    artifacts = ARTIFACTS
    modes = ("pair", DATA_AB, PAIRS)
    organism = "moe"
    organism_fill = {"base": "base", "ft": "ft", "model": "ft", "data": ("b",)}

    compared: Compared = field(default_factory=Compared)
    data: Data = field(default_factory=Data)
    first_n: int = option(8, "--first-n", "The first-N view: the first N analysed positions of each sample.", min=1)
    # the field keeps its old name: run configurations (and so run directories) stay those of older runs
    top_k: int | None = option(None, "--experts-per-token", "Experts per token the statistics use (default: the model's own experts per token).", min=1, old=("--top-k",))
    sweep: str | None = option(None, "--sweep", "Mask sweep: comma list of how many top experts to mask (e.g. 1,2,4,8).")
    sweep_mode: str = option("keep-topk,replace-topk", "--sweep-mode", "Mask modes of the sweep (comma list): keep-topk (masked slots dropped, survivors renormalised), replace-topk (next-best experts take their place), deactivate (SteerMoE: score set below the minimum, top-k re-picked).", choices=MASK_MODES, sep=",")
    mask: Path | None = option(None, "--mask", "Points file whose order the sweep masks (default: this run's own ordering).")
    random_draws: int = option(8, "--random-draws", "Random-expert control draws per sweep point (matched per layer).", min=8)
    bootstrap: int = option(200, "--bootstrap", "Bootstrap replicates over samples for the intervals of the top points.", min=10)

    def __post_init__(self):
        parse_sweep(self.sweep)
        a, b = self.compared.condition_labels()
        if a == b:
            raise UserError(f"--label-a and --label-b are both {a!r}: give two names")
        if self.mask is not None and not self.sweep:
            raise UserError("--mask sets the sweep's order: give --sweep too")

    # ---- modes ----------------------------------------------------------------------------------------
    def described(self):
        """summary.json names this run's sides in its files' descriptions (``artifacts.worded``)."""
        return worded(self)

    @property
    def mode(self) -> str:
        """``models`` (base vs ft, same tokens), ``data`` (one model, two datasets) or ``pairs``."""
        return {DATA_AB: "data", PAIRS: "pairs"}.get(self.compared.mode, "models")

    @property
    def sides(self) -> tuple[str, str]:
        return ("base", "ft") if self.mode == "models" else self.compared.condition_labels()

    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import file_fingerprint, source_fingerprint

        d, c = self.data, self.compared
        values: dict = {"mode": self.mode, **c.fingerprint()}
        if self.mode == "models":
            values.update(d.fingerprint())
            names = d.names
        elif self.mode == "pairs":
            path = c.pairs_path()
            values["pairs"] = file_fingerprint(path)
            names = (path.stem, *self.sides)
        else:
            values["data_a"] = source_fingerprint(c.data_a, d.text_field, d.max_samples, d.max_tokens, flag="--data-a")
            values["data_b"] = source_fingerprint(c.data_b, d.text_field, d.max_samples, d.max_tokens, flag="--data-b")
            names = self.sides
        if self.mask is not None:
            path = Path(self.mask).expanduser()
            if not path.is_file():
                raise UserError(f"--mask {path}: no such file")
            values["mask"] = file_fingerprint(path)
        return Fingerprints(c.labels, tuple(names), values)

    def execute(self, run) -> Result:
        from .collect import collect
        from .inputs import load_inputs
        from .order import order
        from .sweep import run_sweep
        from .write import headline, write_outputs, write_sweep

        with stage("load models and data"):
            models, inputs = load_inputs(self)  # load
        with stage("forward and router statistics"):
            stats = collect(models, inputs, self)  # extract + accumulate (one forward per model per batch), all ranks
        with stage("order"):
            results = order(stats, self)  # usage, diffs, q-values, thresholds, bootstrap intervals
        with stage("mask sweep"):
            sweep = run_sweep(models, inputs, results, self) if self.sweep else None  # mask sweep over the same shards
        with stage("write outputs"):
            write_outputs(run, stats, results, self)  # rank 0 (the others stopped after the last reduction)
            if sweep is not None:
                write_sweep(run, sweep, self)
        return headline(results, sweep, self)
