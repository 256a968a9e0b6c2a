"""`modeldiff mine` pipeline: validate -> load -> extract + accumulate (streaming) -> order -> write."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...core import console
from ...core.errors import UserError
from ...core.rundir import config_hash, run_directory, slug
from .extract import EXTRACTIONS
from .nmf import BACKENDS, MODES
from .orderings import ORDERINGS

DEFAULT_ORDERINGS = "top-k-occurring,fraction-positive-diff,nmf"


@dataclass
class MineOptions:
    base: str | None = None
    ft: str | None = None
    data: list[Path] = field(default_factory=list)
    extraction: str = "logits"
    layer: str | None = None
    top_k: int = 100
    top_n: int = 100
    orderings: str = DEFAULT_ORDERINGS
    nmf_mode: str = "binary"
    nmf_topics: int = 5
    nmf_beta: float = 2.0
    nmf_orthogonal: float = 0.0
    nmf_max_iter: int = 100
    nmf_backend: str = "auto"
    filter_punctuation: bool = False
    filter_special: bool = True
    consolidate_case: bool = False
    likelihood_ratios: bool = False
    two_pass: bool = False
    patchscope_prompt: str | None = None
    patchscope_layer: str | None = None
    plots: bool = True
    out: Path = Path("runs")
    device: str = "auto"
    base_device: str | None = None
    ft_device: str | None = None
    device_map: str | None = None
    dtype: str = "float32"
    batch_size: int = 8
    chunk_size: int = 1024
    max_samples: int | None = None
    max_tokens: int | None = 128
    text_field: str = "text"
    seed: int = 0
    overwrite: bool = False


def parse_orderings(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in ORDERINGS]
    if bad or not names:
        raise UserError(f"--orderings {spec!r}: unknown ordering {bad[0] if bad else '(none)'!r}; choose from {', '.join(ORDERINGS)}")
    return list(dict.fromkeys(names))


def validate(o: MineOptions) -> list[str]:
    if o.extraction not in EXTRACTIONS:
        raise UserError(f"--extraction {o.extraction!r}: expected one of {', '.join(EXTRACTIONS)}")
    orderings = parse_orderings(o.orderings)
    if o.top_k < 1:
        raise UserError(f"--top-k {o.top_k}: must be at least 1")
    if o.top_n < 1:
        raise UserError(f"--top-n {o.top_n}: must be at least 1")
    if o.nmf_mode not in MODES:
        raise UserError(f"--nmf-mode {o.nmf_mode!r}: expected binary or magnitude")
    if o.nmf_topics < 1:
        raise UserError(f"--nmf-topics {o.nmf_topics}: must be at least 1")
    if o.nmf_beta not in (1.0, 2.0):
        raise UserError(f"--nmf-beta {o.nmf_beta}: expected 1 (KL) or 2 (Frobenius)")
    if o.nmf_orthogonal < 0:
        raise UserError(f"--nmf-orthogonal {o.nmf_orthogonal}: must be >= 0")
    if o.nmf_backend not in BACKENDS:
        raise UserError(f"--nmf-backend {o.nmf_backend!r}: expected one of {', '.join(BACKENDS)}")
    if o.nmf_backend == "torchnmf" and o.nmf_orthogonal > 0:
        raise UserError("--nmf-orthogonal: torchnmf has no orthogonality penalty; use --nmf-backend auto or sparse")
    if o.two_pass and o.extraction == "patchscope":
        raise UserError("--two-pass: not available with --extraction patchscope (its readout needs the whole base model)")
    if o.extraction == "logits" and o.layer is not None:
        raise UserError("--layer: only used with --extraction logit-lens or patchscope")
    return orderings


def _data_paths(o: MineOptions) -> list[Path]:
    if o.data:
        return [Path(p) for p in o.data]
    if o.base is not None or o.ft is not None:
        raise UserError("--data: required when --base/--ft are given (the default data belongs to the cake organism)")
    from ...organisms import get_organism

    return [get_organism("cake").data("base")]


def run(o: MineOptions) -> Path:
    from .load import load_inputs
    from .write import headline, write_outputs

    orderings = validate(o)
    inputs = load_inputs(o, _data_paths(o))
    config = {
        "command": "mine", "base": inputs.base_source.spec, "ft": inputs.ft_source.spec,
        "base_fingerprint": inputs.base_source.fingerprint, "ft_fingerprint": inputs.ft_source.fingerprint,
        "datasets": {d.name: d.fingerprint for d in inputs.datasets}, "extraction": o.extraction,
        "layer": inputs.layer, "top_k": o.top_k, "top_n": o.top_n, "orderings": orderings,
        "nmf": {"mode": o.nmf_mode, "topics": o.nmf_topics, "beta": o.nmf_beta, "orthogonal": o.nmf_orthogonal,
                "max_iter": o.nmf_max_iter, "backend": o.nmf_backend} if "nmf" in orderings else None,
        "filters": {"punctuation": o.filter_punctuation, "special": o.filter_special, "consolidate_case": o.consolidate_case},
        "likelihood_ratios": o.likelihood_ratios, "max_samples": o.max_samples, "max_tokens": o.max_tokens,
        "text_field": o.text_field, "dtype": o.dtype, "seed": o.seed,
        "patchscope": {"prompt": o.patchscope_prompt, "layer": o.patchscope_layer} if o.extraction == "patchscope" else None,
    }
    with run_directory(o.out, run_parts(o, inputs, config, orderings), config, command="mine", overwrite=o.overwrite) as run:
        if not run.reused:
            from .compute import compute

            results = compute(o, inputs, orderings)
            write_outputs(run, o, inputs, results, orderings)
    headline(run.path)
    console.done(run.path)
    return run.path


def run_parts(o: MineOptions, inputs, config: dict, orderings: list[str]) -> list[str]:
    """``{base}/{ft}/mine_{samples}s_{tokens}t_top{K}_{extraction}[_L{layer}][_{hash}]/seed{S}``: the hash
    suffix appears only when orderings, NMF settings, filters, --top-n, likelihood ratios or the patchscope
    prompt differ from the defaults, so differently configured runs never collide."""
    samples = sum(len(d.samples) for d in inputs.datasets)
    tokens = o.max_tokens if o.max_tokens is not None else max(len(s.ids) for d in inputs.datasets for s in d.samples)
    name = f"mine_{samples}s_{tokens}t_top{o.top_k}_{o.extraction}"
    if inputs.layer is not None:
        name += f"_L{inputs.layer}"
    default = MineOptions()
    variant = {k: config[k] for k in ("orderings", "nmf", "filters", "top_n", "likelihood_ratios", "patchscope")}
    ref = {"orderings": parse_orderings(default.orderings),
           "nmf": {"mode": default.nmf_mode, "topics": default.nmf_topics, "beta": default.nmf_beta,
                   "orthogonal": default.nmf_orthogonal, "max_iter": default.nmf_max_iter,
                   "backend": default.nmf_backend},
           "filters": {"punctuation": default.filter_punctuation, "special": default.filter_special,
                       "consolidate_case": default.consolidate_case},
           "top_n": default.top_n, "likelihood_ratios": default.likelihood_ratios,
           "patchscope": variant["patchscope"] if o.patchscope_prompt is None and o.patchscope_layer is None else None}
    if variant != ref:
        name += "_" + config_hash(variant, 6)
    return [slug(inputs.base_source.label), slug(inputs.ft_source.label), name, f"seed{o.seed}"]


def options_dict(o: MineOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()}
