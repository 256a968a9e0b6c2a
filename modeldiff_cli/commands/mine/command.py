"""The `mine` command: its ingredients, its own options, and ``execute()`` — the pipeline, top to bottom.
Also the options of `mine overview` (a small dataclass; the payload itself is built by ``commands.mine.payload``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import Compared
from ...core.spine.ingredients import Datasets, Readout, TokenFilter
from ...core.spine.rundir import slug
from ...core.spine.spec import option
from ...core.spine.timing import stage
from .artifacts import ARTIFACTS

ORDERINGS = ("top-k-occurring", "fraction-positive-diff", "nmf")
NMF_MODES = ("binary", "magnitude")
NMF_BACKENDS = ("auto", "torchnmf", "sparse")
DEFAULT_ORDERINGS = ",".join(ORDERINGS)


def parse_orderings(spec: str) -> list[str]:
    """The orderings of ``--orderings`` (checked by its option's choices), each once, in the order given."""
    return list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))


@dataclass(frozen=True)
class Mine(Command):
    """Per position, diff = ft - base logits; per token, how often it is among the top-K promoted, how often
    its logit rises, and NMF topics of promoted tokens; prints the top promoted tokens and the run directory
    last. `modeldiff mine overview RUN_DIR` builds an agent payload."""

    name = "mine"
    resumable = True
    artifacts = ARTIFACTS
    old_flags = {"readout": ("--extraction",)}
    organism_fill = {"base": "base", "ft": "ft", "data": ("base",)}

    compared: Compared = field(default_factory=Compared)
    data: Datasets = field(default_factory=Datasets)
    readout: Readout = field(default_factory=Readout)
    tokens: TokenFilter = field(default_factory=TokenFilter)
    top_k: int = option(100, "--top-k", "K of the per-position top-K promoted / suppressed tokens (at most the shared vocabulary).", min=1)
    top_n: int = option(100, "--top-n", "Tokens listed per ordering (100, not lens' and interpret's 20: an ordering's file is the list that scripts, `mine overview` and the report read, not a printed table).", min=1)
    orderings: str = option(DEFAULT_ORDERINGS, "--orderings", "The orderings written.", choices=ORDERINGS, sep=",")
    nmf_mode: str = option("binary", "--nmf-mode", "NMF matrix entries: binary (1 per top-K entry) or magnitude (the logit diff).", choices=NMF_MODES)
    nmf_topics: int = option(5, "--nmf-topics", "Number of NMF topics.", min=1)
    nmf_beta: float = option(2.0, "--nmf-beta", "NMF beta-divergence: 1 = KL, 2 = Frobenius.", choices=(1.0, 2.0))
    nmf_orthogonal: float = option(0.0, "--nmf-orthogonal", "Weight of the orthogonality penalty between topics (0 = off).", min=0.0)
    nmf_max_iter: int = option(100, "--nmf-max-iter", "Maximum NMF iterations.", min=1)
    nmf_backend: str = option("auto", "--nmf-backend", "NMF solver: torchnmf (dense column-compressed matrix), sparse (same updates on CSR; needed for --nmf-orthogonal) or auto (torchnmf when positions x distinct tokens <= 4e6 and no orthogonality).", choices=NMF_BACKENDS)
    likelihood_ratios: bool = option(False, "--likelihood-ratios", "Also write per-sequence log-likelihood ratios log p_ft - log p_base.")
    two_pass: bool = option(False, "--two-pass", "Load one model at a time: keep the base model's hidden states, recompute its logits (same results).", result=False)
    plots: bool = option(True, "--plots/--no-plots", "Write the PNG plots.")

    def settings(self) -> dict:
        """Without the nmf ordering the NMF options decide nothing: left out, so they do not split runs."""
        out = super().settings()
        if "nmf" not in parse_orderings(self.orderings):
            out = {k: v for k, v in out.items() if not k.startswith("nmf_")}
        return out

    def __post_init__(self):
        if self.nmf_backend == "torchnmf" and self.nmf_orthogonal > 0:
            raise UserError("--nmf-orthogonal: torchnmf has no orthogonality penalty; use --nmf-backend auto or sparse")
        if self.two_pass and self.readout.readout == "patchscope":
            raise UserError("--two-pass: not available with --readout patchscope (its readout needs the whole base model)")
        if self.readout.readout == "logits" and self.readout.layers is not None:
            raise UserError("--layers: only used with --readout logit-lens or patchscope")

    @property
    def ordering_list(self) -> list[str]:
        return parse_orderings(self.orderings)

    def fingerprints(self) -> Fingerprints:
        return Fingerprints(self.compared.labels, self.data.names, {**self.compared.fingerprint(), **self.data.fingerprint()})

    def run_name(self) -> str:
        """``{datasets}-{readout}[-L{layer}]``: the layer as selected (``Llast`` for -1, ``Lm2`` for -2, ``L0.75``),
        known before any model loads; the hash that follows tells every other setting apart."""
        name = f"{'+'.join(self.fp.names)}-{self.readout.readout}"
        if self.readout.readout != "logits":
            text = str(self.readout.layers if self.readout.layers is not None else "-1").strip()
            name += "-L" + ("last" if text == "-1" else slug(text.replace("-", "m")))
        return name

    def execute(self, run) -> Result:
        from .pipeline import accumulate_all, load, order
        from .write import headline, write_outputs

        with stage("load models and data"):
            inputs = load(self)  # models (both, or one at a time with --two-pass), layer, datasets
        with stage("forward and statistics"):
            accs = accumulate_all(self, inputs)  # streaming: forward -> readout in chunks -> diff -> statistics
        with stage("orderings"):
            results = order(self, inputs, accs)  # orderings and NMF topics per dataset
        with stage("write outputs"):
            write_outputs(run, self, inputs, results)
        result = headline(self, inputs, results)
        result.warnings.extend(self.identical_warnings(accs))
        return result

    def identical_warnings(self, accs) -> list[str]:
        """Two identical models (same fingerprint), or no logit difference at all on a dataset: the orderings
        list tokens tied at 0, not promoted ones."""
        same = self.compared.identical_warning()
        if same:
            return [same]
        zero = [ds for ds, acc in zip(self.data.names, accs, strict=True)
                if acc.stats.total_positions and not (acc.stats.count_topk_pos.any() or acc.stats.count_topk_neg.any())]
        if not zero:
            return []
        return [f"every logit difference is zero on {', '.join(zero)}: the two models give the same logits there, "
                "so the listed tokens are ties at 0, not promoted or suppressed"]


@dataclass(frozen=True)
class Overview:
    """The JSON payload an LLM agent is given: per anonymised dataset (ds1, ds2, ...) the token groups of each
    ordering within a token budget, plus the run's metadata. Printed as JSON; written beside RUN_DIR (a
    complete run is never modified) as RUN_DIR.overview_budget{N}.json, or to --output; its path last."""

    name = "overview"

    token_budget: int = option(200, "--token-budget", "Total tokens listed in the payload, split across datasets and ordering groups.", min=1)
    output: str | None = option(None, "--output", "Where the payload JSON goes (default: beside RUN_DIR, RUN_DIR.overview_budget{N}.json).")
