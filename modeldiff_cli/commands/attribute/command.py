"""The `attribute` command and its `queries` sub-command: ingredients, own options, and ``execute()`` — the
pipeline, top to bottom. Light imports only (``--help`` and reused runs never import torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import MODEL, Compared
from ...core.spine.ingredients import Reading, Readout, id_field_option
from ...core.spine.spec import option
from . import choices
from .artifacts import ARTIFACTS, QUERIES_ARTIFACTS

METHOD_HELP = ("Comma list of: " + ", ".join(choices.METHODS) + "; and the fused forms " + choices.FUSION_HELP
               + ". loss-drop is each document's mean loss under --base minus under --ft, the same for every query (in a "
               "fusion it demotes documents the base already knew). ekfac, kfac, trackstar need the extra "
               "modeldiff[influence]. Default: " + choices.WITH_TRACKSTAR
               + " with the extra installed, else " + choices.WITHOUT_TRACKSTAR + ". The headline reports the "
               "method with the best MAP over all queries.")
NO_PATCHSCOPE = "attribute reads no patchscope (it compares hidden states and gradients of the two checkpoints)"


@dataclass(frozen=True)
class Attribute(Command):
    """Rank the training documents by their influence on each query and score the rankings; prints the metrics
    table, then the run directory last. Subcommand `queries` builds query files.
    """

    name = "attribute"
    artifacts = ARTIFACTS
    organism = "hops"
    # organism roles: base = the "old" checkpoint, ft = the "new" one; data: new_train (the documents trained
    # between them) and queries
    organism_fill = {"base": "base", "ft": "ft", "train": "new_train", "queries": "queries"}
    aliases = {"base": ("--old",), "ft": ("--new",)}
    defaults = {
        "id_field": ("uid", "the hops records name their id uid"),
        "batch_size": (16, "documents and queries are short; the benchmark figures in docs/attribute.md are at 16"),
        "readout": ("logits", "the only readout attribute takes: its losses read the models' own output"),
    }

    compared: Compared = field(default_factory=Compared)
    reading: Reading = field(default_factory=Reading)
    # Readout gives --layers its shared syntax; the losses read the models' own output, so --readout is logits only
    readout: Readout = field(default_factory=Readout)
    train: str | None = option(None, "--train", "JSONL of training documents (text + id fields; hops: func, role, constant) used between --base (old) and --ft (new). Default: the hops organism's new_train.", data=True, result=False)
    queries: str | None = option(None, "--queries", "JSONL of test queries (prompt + completion fields; optional func, role, relevant, candidates). Default: the hops organism's queries.", data=True, result=False)
    method: str = option(choices.DEFAULT_METHODS, "--method", METHOD_HELP)
    pooling: str = option("span", "--pooling", "Per-sample pooling: last, mean or span (the loss / answer positions); TRAIN:QUERY sets each side, e.g. mean:span.")
    loss: str = option("ce", "--loss", "Loss for gradients: ce (next-token loss on the answer / document) or margin (target logit vs the candidate answers; documents fall back to ce).", choices=choices.LOSSES)
    ig_steps: int = option(8, "--ig-steps", "Riemann steps of integrated gradients (method ig). 8, not tokenlens' 50: this ig integrates from h_old to h_new at one layer (a short path, midpoint rule), and each step is a backward over every document.", min=1)
    gate_percentile: float = option(10.0, "--gate-percentile", "patch: percent of hidden dimensions gated per candidate (top |Δh ⊙ g|).", above=0, max=100)
    patch_pool: int = option(50, "--patch-pool", "patch: documents patched per query (its top N by delta-h-x-grad; the rest score -inf).", min=1)
    aggregate: str = option("mean", "--aggregate", "Layer aggregation: mean, top3 (mean of each pair's 3 best layers), all (one cosine over concatenated layers) or best (per method, the layer with the best MAP on a held-out half of the query functions; every method is then scored on the other half).", choices=choices.AGGREGATES)
    select_fraction: float = option(0.5, "--select-fraction", "--aggregate best: share of the query functions (seeded by --seed) used to choose the layer; the metrics are on the rest.", above=0, below=1)
    target_field: str = option("targets", "--target-field", "Training-record field with the fact each document teaches, for --pooling span on documents: a string (or list of strings) in the text, or [start, end] character spans. Hops records need none (the constant; a wrapper: its base function).")
    damping: float | None = option(None, "--damping", "ekfac / kfac: damping added to the curvature's eigenvalues (default: Kronfluence's heuristic, 0.1 x mean eigenvalue).", above=0)
    projection_dim: int = option(16, "--projection-dim", "trackstar: Bergson's random projection of each module's gradient to P x P (TrackStar's preconditioner needs one: P >= 1).", min=1)
    trackstar_damping: float = option(10.0, "--trackstar-damping", "trackstar: damping of the mixed autocorrelation's inverse square root, as a multiple of its mean eigenvalue (Bergson's damped_inverse; Bergson's default 0.1 over-amplifies the directions a few hundred documents do not span).", above=0)
    trackstar_checkpoint: str = option("both", "--trackstar-checkpoint", "trackstar: the checkpoint(s) its gradients are taken at: both (default: the mean of the old and the new checkpoint's TrackStar scores, as Bergson's TRAK ensembles checkpoints; the two ends of the training between them), new or old.", choices=choices.CHECKPOINTS)
    zscore: bool = option(False, "--zscore", "Standardise each query's scores per layer before aggregating.")
    ks: str = option("1,5,10,20,50", "--k", "Cut-offs of recall@k / precision@k / top-k composition.")
    id_field: str = id_field_option()
    prompt_field: str = option("prompt", "--prompt-field", "Query field holding the prompt.")
    answer_field: str = option("completion", "--answer-field", "Query field holding the expected answer (its tokens form the answer span).")
    ground_truth: Path | None = option(None, "--ground-truth", "JSON with a 'functions' table {func: {role, partner, doc_uids}} (default: the organism's when --train is its file, else inferred from func/role/constant fields).", result=False)
    cache_dir: Path | None = option(None, "--cache-dir", "Cache of pooled vectors (safetensors). Default: OUT/attribute-cache.", result=False)

    def __post_init__(self):
        from ...core.data.datasource import parse_source

        self.readout.allow("logits")
        if self.readout.patchscope_prompt is not None:
            raise UserError(f"--patchscope-prompt: {NO_PATCHSCOPE}")
        if self.readout.patchscope_layer is not None:
            raise UserError(f"--patchscope-layer: {NO_PATCHSCOPE}")
        from .influence import require

        for m in choices.base_methods(choices.parse_methods(self.method)):
            require(m)  # the optional extra, checked without importing it
        choices.parse_pooling(self.pooling)
        choices.parse_ks(self.ks)
        for flag, value in (("--train", self.train), ("--queries", self.queries)):
            if value is None:
                raise UserError(f"{flag}: required when --base/--ft are given (the default data belongs to the "
                                f"{self.organism} organism)")
            parse_source(value, flag)  # the file exists (before any model loads)
        if self.ground_truth is not None and not Path(self.ground_truth).expanduser().is_file():
            raise UserError(f"--ground-truth {self.ground_truth}: no such file")

    # ---- parsed options -----------------------------------------------------------------------------------
    @property
    def method_list(self) -> list[str]:
        return choices.parse_methods(self.method)

    @property
    def pooling_pair(self) -> tuple[str, str]:
        return choices.parse_pooling(self.pooling)

    @property
    def k_values(self) -> list[int]:
        return choices.parse_ks(self.ks)

    def _organism_truth_file(self) -> Path | None:
        """The organism's ground_truth.json when --train is one of the organism's data files (with its checkpoints)."""
        if not any(str(s).startswith(f"organism:{self.organism}") for s in (self.compared.base, self.compared.ft)):
            return None
        from ...core.model.sources import organism

        org = organism(self.organism)
        if Path(self.train).expanduser().resolve().parent != (Path(org.path) / "data").resolve():
            return None
        return Path(org.path) / "ground_truth.json"

    def truth_file(self) -> Path | None:
        """Where the function table comes from: --ground-truth, the organism's, or None (inferred from records)."""
        if self.ground_truth is not None:
            return Path(self.ground_truth).expanduser()
        return self._organism_truth_file()

    def truth_table(self) -> tuple[dict | None, list | None]:
        """``(functions, candidate_constants)`` of the ground truth (``(None, None)``: inferred from the records)."""
        path = self.truth_file()
        if path is None:
            return None, None
        from ...core.spine.artifacts import read_json

        gt = read_json(path, "--ground-truth")
        if not isinstance(gt, dict) or not isinstance(gt.get("functions", {}), dict):
            raise UserError(f"--ground-truth {path}: expected a JSON object with a 'functions' table")
        return gt.get("functions"), gt.get("candidate_constants")

    # ---- the spine ----------------------------------------------------------------------------------------
    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import dataset_name, file_fingerprint, source_fingerprint

        r = self.reading
        truth = self.truth_file()
        values = {
            **self.compared.fingerprint(),
            "train": source_fingerprint(self.train, r.text_field, r.max_samples, r.max_tokens),
            "queries": source_fingerprint(self.queries, self.prompt_field, None, None),
            "ground_truth": file_fingerprint(truth) if truth is not None else None,
        }
        return Fingerprints(self.compared.labels, (dataset_name(self.train), dataset_name(self.queries)), values)

    def execute(self, run) -> Result:
        from ...core.spine.timing import stage
        from .pipeline import (
            add_fusions,
            encode,
            extract_all,
            load_checkpoints,
            read_inputs,
            restrict,
            score_all,
            select_layers,
        )
        from .report import evaluate, headline, write_outputs

        with stage("read inputs"):
            inputs = read_inputs(self)  # records, ground truth, kept queries: checked before any model loads
        with stage("load models"):
            old, new = load_checkpoints(self.compared)
        with stage("encode"):
            encoded = encode(inputs, old, new, self)
        layers = self.readout.resolve_layers(old.adapter.n_layers)
        with stage("extract"):
            vectors, timing = extract_all(old, new, inputs, encoded, layers, self)  # torchrun: sharded, gathered
        from ...core.spine import distributed as dist

        dist.handoff()  # a non-zero rank stops here: scoring (patch, ekfac/kfac, trackstar, baselines) is rank 0's
        with stage("score"):
            scores = score_all(old, new, encoded, layers, vectors, self)
            split = select_layers(scores, inputs.truth, layers, self)  # --aggregate best: on held-out functions
            scores, scored = restrict(add_fusions(scores, self), inputs, split)
        with stage("evaluate"):
            results = evaluate(scores, scored.truth, self.k_values)
        settings = {m: s["trackstar"] for m, s in scores.items() if "trackstar" in s}  # damping, mixing λ, checkpoint
        timing["methods"] = {m: {"seconds": s.get("seconds"), "samples_per_s": (len(encoded.train) + len(encoded.queries))
                                 / s["seconds"] if s.get("seconds") else None} for m, s in scores.items()}
        if split is not None:
            timing["layer_selection"] = split
        run.metadata.update(models={"base": old.source.spec, "ft": new.source.spec}, train=str(self.train),
                            queries=str(self.queries), extraction=timing)
        from ...core.data.datasource import dataset_name

        data = dataset_name(self.train) if self.train else "the hops organism's data"
        with stage("write"):
            write_outputs(run, scores, results, scored.truth, scored.train_rows, scored.query_rows, layers, timing,
                          f"{old.source.label} vs {new.source.label} on {data}", settings)
        return headline(results, timing, len(scored.query_rows), len(scored.train_rows), settings)


@dataclass(frozen=True)
class AttributeQueries(Command):
    """Build queries per function with their expected constant; with --model keep only those the model answers
    correctly among the candidate constants; prints the kept counts per function, then the run directory last."""

    name = "attribute-queries"
    artifacts = QUERIES_ARTIFACTS
    panel = "Queries"
    organism = "hops"
    organism_fill = {"data": "train"}  # no --model: nothing is filtered (the organism's model is not implied)
    modes = (MODEL,)
    defaults = {"model": (None, "no --model: nothing is filtered, every query built is kept")}

    compared: Compared = field(default_factory=Compared)
    data: str | None = option(None, "--data", "Hops-style JSONL (records with func, role, constant). Default: the hops organism's train data.", data=True, result=False)
    template: str = option("{F}({x}) returns the value ", "--template", "Query text; {F} = function name, {x} = input.")
    inputs: str = option("1,2,3,4,5,6,7,8", "--inputs", "Comma list of inputs x substituted for {x}.")
    text_field: str = option("text", "--text-field", "Field (JSONL) or column (CSV, Parquet, datasets) holding the text.")
    include_distractors: bool = option(False, "--include-distractors", "Also build queries on distractor functions.")
    batch_size: int = option(16, "--batch-size", "Queries per forward pass with --model (each pass scores 4x this many candidate sequences).", min=1, result=False)

    def __post_init__(self):
        from ...core.data.datasource import parse_source

        choices.parse_inputs(self.inputs)
        if "{F}" not in self.template:
            raise UserError(f"--template {self.template!r}: must contain {{F}} (the function name)")
        parse_source(self.data, "--data")

    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import dataset_name, source_fingerprint

        values = {"data": source_fingerprint(self.data, self.text_field, None, None)}
        labels: tuple[str, ...] = ()
        if self.compared.model is not None:
            values.update(self.compared.fingerprint())
            labels = self.compared.labels
        return Fingerprints(labels, (dataset_name(self.data),), values)

    def execute(self, run) -> Result:
        from .queries import answers_correct, build_queries, read_functions, write_queries

        functions = read_functions(self.data, self.text_field, self.include_distractors)
        queries = build_queries(functions, self.template, choices.parse_inputs(self.inputs))
        model = self.compared.load() if self.compared.model is not None else None
        correct = answers_correct(model, queries, self.batch_size) if model is not None else None
        return write_queries(run, functions, queries, correct, self.compared.model)

