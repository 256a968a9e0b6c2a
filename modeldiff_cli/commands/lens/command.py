"""The `lens` command: its ingredients, its own options, and ``execute()`` — the pipeline, top to bottom."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import Compared
from ...core.spine.ingredients import Data, Readout, TokenFilter
from ...core.spine.spec import option
from ...core.spine.timing import stage
from .artifacts import ARTIFACTS

POSITIONS = ("all", "last")


@dataclass(frozen=True)
class Lens(Command):
    """Per layer, both models' logit-lens (or patchscope) distributions at the analysed positions: mean
    KL(ft || base), each model's KL from its own final output, top-1 agreement, and the tokens ft promotes most
    over base; prints the run directory last."""

    name = "lens"
    resumable = True
    artifacts = ARTIFACTS
    defaults = {"readout": ("logit-lens", "lens reads every layer; `logits` would only read the last")}
    old_flags = {"readout": ("--method",)}
    organism_fill = {"base": "base", "ft": "ft", "data": ("base",)}

    compared: Compared = field(default_factory=Compared)
    data: Data = field(default_factory=Data)
    readout: Readout = field(default_factory=Readout)
    tokens: TokenFilter = field(default_factory=TokenFilter)
    prompt: str | None = option(None, "--prompt", "Single-prompt mode (instead of --data): also draw the per-position x per-layer top-token table of each model.", data=True)
    positions: str = option("all", "--positions", "Positions analysed in each sample: all (selected by the data: every token, or assistant tokens of chats) or last.", choices=POSITIONS)
    top_n: int = option(20, "--top-n", "Promoted / suppressed tokens listed per layer.", min=1)

    def __post_init__(self):
        self.readout.allow("logit-lens", "patchscope")
        if self.prompt is not None and self.data.data:
            raise UserError("--prompt and --data are exclusive: give one")
        if self.prompt is not None and not self.prompt.strip():
            raise UserError("--prompt is empty")

    def fingerprints(self) -> Fingerprints:
        if self.prompt is not None:
            data = {"prompt": hashlib.sha256(self.prompt.encode()).hexdigest()[:16]}
            names = ("prompt",)
        else:
            data, names = self.data.fingerprint(), self.data.names
        return Fingerprints(self.compared.labels, (*names, self.readout.readout), {**self.compared.fingerprint(), **data})

    def execute(self, run) -> Result:
        from .pipeline import accumulate, dataset, order
        from .write import headline, write_outputs

        with stage("load models and data"):
            pair = self.compared.load()
            data = dataset(self, pair.tokenizer)
        layers = self.readout.resolve_layers(pair.base.adapter.n_layers)
        with stage("forward and layer readouts"):
            acc = accumulate(pair, data, layers, self)
        with stage("order"):
            results = order(acc, pair, self)
        with stage("write outputs"):
            write_outputs(run, acc, results, pair, data, layers, self)
        return headline(results, layers, pair)
