"""The `interpret` command: ingredients, its own options, and ``execute()`` — the pipeline, top to bottom."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError
from ...core.spine.command import Command, Fingerprints, Result
from ...core.spine.compared import Compared
from ...core.spine.ingredients import Datasets, Readout, TokenFilter
from ...core.spine.spec import option
from .artifacts import ARTIFACTS
from .categories import BUILTIN, read_categories


def library_version() -> str | None:
    """eai-sparsify's installed version, found without importing it (a reused run imports no torch)."""
    from importlib import metadata

    try:
        return metadata.version("eai-sparsify")
    except metadata.PackageNotFoundError:
        return None



def _scales(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise UserError(f"--patchscope-scales {text!r}: expected a comma list of positive numbers")
    return sorted(set(values))  # increasing: the scale criterion's ties go to the smaller scale


@dataclass(frozen=True)
class Interpret(Command):
    """Named, feature-level differences between base and ft, grounded in data: per layer and prompt category the
    mean activation difference (read through the logit lens / patchscope, with token relevance from the data), a
    crosscoder on the concatenation of h_base and h_ft, names built from tokens + category + side + layer, and a causal check of each
    feature against random directions, with a report (markdown and self-contained HTML); prints the top features
    and the run directory last."""

    name = "interpret"
    artifacts = ARTIFACTS
    defaults = {"readout": ("logit-lens", "directions are read through the logit lens; patchscope adds a scale search")}
    organism_fill = {"base": "base", "ft": "ft", "categories": BUILTIN}  # the built-in baking / everyday file

    compared: Compared = field(default_factory=Compared)
    data: Datasets = field(default_factory=Datasets)
    readout: Readout = field(default_factory=Readout)
    tokens: TokenFilter = field(default_factory=TokenFilter)
    categories: Path | None = option(None, "--categories", "Categories file (alignmt's format): a JSON object {\"category\": [\"prompt\", ...]}. Each --data file is a category too; one category alone reads the difference on that data, without a contrast. Default: the organism's built-in baking / everyday file.", data=True, result=False, old=("--prompts",))
    # the field keeps its old name "positions": run configurations (and so run directories) stay those of older runs
    positions: int = option(8, "--first-n", "Also average the difference at each of the first N positions of a prompt (ADL's view; routing's --first-n).", min=1, old=("--positions",))
    top_n: int = option(20, "--top-n", "Promoted / suppressed tokens listed per feature.", min=1)
    features: int = option(6, "--features", "Crosscoder latents named and checked per crosscoder layer (0: directions only).", min=0)
    crosscoder: bool = option(True, "--crosscoder/--no-crosscoder", "Train the crosscoder (a TopK SAE on the concatenation of h_base and h_ft).")
    crosscoder_layers: str | None = option(None, "--crosscoder-layers", "Layers of the crosscoder (same syntax as --layers). Default: the layer with the largest relative difference.")
    latents: int = option(0, "--latents", "Crosscoder latents (0: 4 x the concatenated width 2d).", min=0)
    norm_penalty: float = option(0.1, "--norm-penalty", "Weight of the crosscoder's decoder-norm penalty: activation x (|d_base| + |d_ft|) (Lindsey et al. 2024), which lets a latent specialise to one model (0: plain TopK).", min=0)
    k: int = option(16, "--active-latents", "Active latents per vector (the crosscoder's TopK k).", min=1, old=("--k",))
    steps: int = option(0, "--steps", "Crosscoder training steps (0: 2 epochs of the sample, 200..2000).", min=0)
    crosscoder_batch: int = option(1024, "--crosscoder-batch", "Vectors per crosscoder training step.", min=1)
    lr: float = option(1e-3, "--lr", "Adam learning rate of the crosscoder.")
    max_vectors: int = option(20000, "--max-vectors", "Paired activation vectors kept per crosscoder layer (a seeded sample; the only memory that grows with the data).", min=16)
    random_directions: int = option(32, "--random-directions", "Random directions of the causal check's null distribution.", min=32)
    causal_samples: int = option(32, "--causal-samples", "Prompts per category in the causal check.", min=1)
    patchscope_scales: str = option("0.5,1,2,4,8", "--patchscope-scales", "With --readout patchscope: scales (x the mean activation norm) tried; the one whose top tokens agree most across identity prompts wins.")

    def __post_init__(self):
        self.readout.allow("logit-lens", "patchscope")
        if self.categories is not None:
            read_categories(self.categories)
        _scales(self.patchscope_scales)
        if self.crosscoder and library_version() is None:
            raise UserError("--crosscoder: needs eai-sparsify (pip install 'modeldiff[interpret]'), "
                            "or pass --no-crosscoder")
        if self.categories is None and not self.data.data:
            raise UserError("--categories/--data: give a categories file or data files")

    def fingerprints(self) -> Fingerprints:
        from ...core.data.datasource import file_fingerprint

        values = {**self.compared.fingerprint()}
        if self.crosscoder:
            values["coder_library"] = f"eai-sparsify {library_version()}"
        names: tuple[str, ...] = ()
        if self.categories is not None:
            values["prompts"] = file_fingerprint(Path(self.categories))  # the key older runs were made with
            names += (Path(self.categories).stem,)
        if self.data.data:
            values.update(self.data.fingerprint())
            names += self.data.names
        return Fingerprints(self.compared.labels, names, values)

    def execute(self, run) -> Result:
        import torch

        from ...core.spine import distributed as dist
        from ...core.spine.timing import stage
        from . import causal, crosscoder
        from .activations import collect, extract
        from .categories import load_categories, single
        from .directions import patchscope_reading, relevance, token_counts
        from .features import direction_features, latent_features, merge, rank, read_and_name
        from .write import headline, write_outputs

        pair = self.compared.load()  # timed as "load models" by core.model.loading
        tok, V = pair.tokenizer, pair.shared_vocab
        categories = load_categories(self, tok)
        n_layers = pair.base.adapter.n_layers
        layers = self.readout.resolve_layers(n_layers)
        # 1. activation differences (streaming means; under torchrun each rank's batches, sums reduced)
        with stage("extraction"):
            stats = extract(pair, categories, layers, self.positions, self.data.batch_size)
            peak = layers[int(stats.relative_norms().max(dim=1).values.argmax())]
            cc_layers = self._crosscoder_layers(n_layers, peak) if self.crosscoder else []
            # paired sample at the crosscoder layers and the directions' layers (for contexts and readings)
            dir_layers = sorted({layers[int(i)] for i in stats.relative_norms().argmax(dim=0)})
            samples = collect(pair, categories, sorted(set(cc_layers) | set(dir_layers)), self.max_vectors,
                              self.data.batch_size, self.run.seed)
        dist.handoff()  # a non-zero rank's share ends here: rank 0 reads, trains, checks and writes
        keep = torch.tensor(self.tokens.keep_mask(tok, V))
        # one data source: nothing to contrast its text with (relevance 0: no token is supported)
        rel = torch.zeros(1, V) if single(categories) else relevance(token_counts(categories, V))
        # 2. difference directions (candidates); with one category its specific direction is identically zero
        features = direction_features(pair, stats, categories, samples)
        if single(categories):
            features = [f for f in features if f["basis"] != "specific"]
        # 3. crosscoders
        coders, lstats = {}, {}
        for layer in cc_layers:
            s = samples[layer]
            latents = self.latents or crosscoder.default_latents(2 * s.base.shape[1])
            steps = self.steps or crosscoder.default_steps(s.base.shape[0], self.crosscoder_batch)
            with stage("crosscoder training"):
                coders[layer] = crosscoder.train(s, latents=latents, k=self.k, steps=steps,
                                                 batch=self.crosscoder_batch, lr=self.lr, seed=self.run.seed,
                                                 label=f"layer {layer}", exclusive=self.norm_penalty)
                lstats[layer] = crosscoder.latent_stats(coders[layer], s, len(categories), self.run.seed)
            features += latent_features(pair, coders[layer], lstats[layer], s, categories, self.features)
        # 4. reading and naming: the prediction change where each feature is active; near-duplicates merged
        with stage("naming"):
            features = read_and_name(pair, features, samples, rel, keep, self.top_n)
            features = merge(features)  # near-duplicates (cos > 0.9 at one layer) become one feature
            if self.readout.readout == "patchscope":
                self._patchscope(pair, [f for f in features if f["kind"] == "direction"], stats, keep,
                                 patchscope_reading)
        # 5. causal check, then rank
        with stage("causal check"):
            ev = causal.Evaluator(pair, categories, self.causal_samples, self.data.batch_size)
            causal.check(ev, features, self.random_directions, self.run.seed)
            features = rank(features)
        with stage("writing"):
            write_outputs(run, self, pair, categories, stats, rel, features, coders, lstats, samples)
        result = headline(features, stats, coders)
        result.headline["categories"] = [c.name for c in categories]
        if single(categories):
            result.headline["mode"] = "one data source"
            result.lines.insert(0, f"one data source ({categories[0].name}): the difference on this data, no "
                                   "category contrast (no category-specific directions, no token relevance)")
        return result

    def _crosscoder_layers(self, n_layers: int, peak: int) -> list[int]:
        from ...core.model.arch import resolve_layers

        if self.crosscoder_layers is None:
            return [peak]
        return resolve_layers(self.crosscoder_layers, n_layers, "--crosscoder-layers")

    def _patchscope(self, pair, features, stats, keep, reading) -> None:
        from ...core.data.tokens import display_tokens
        from ...core.model.patchscope import DEFAULT_PROMPT

        prompts = [self.readout.patchscope_prompt] if self.readout.patchscope_prompt else [
            DEFAULT_PROMPT, "cat -> cat\n42 -> 42\nsun -> sun\n?", "red -> red\nword -> word\n7 -> 7\n?"]
        scale_of = stats.norms.mean[..., 1, 0].mean(-1)  # mean |h_ft| per layer
        for f in features:
            li = stats.layers.index(f["layer"])
            scales = [s * float(scale_of[li]) for s in _scales(self.patchscope_scales)]
            ps = reading(pair, f["vector"], f["layer"], scales, prompts, keep, min(self.top_n, 10), self.readout.chunk_size)
            ps["tokens"] = display_tokens(pair.tokenizer, ps["tokens"])
            f["patchscope"] = ps
