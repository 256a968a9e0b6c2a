"""The values attribute's options take, and their parsers. Torch-free: the command validates its options with
these while it is built, before any run is reused or any model loads."""

from __future__ import annotations

from ...core.errors import UserError

MODEL_METHODS = ("delta-h", "grad", "delta-h-x-grad", "ig", "patch", "loss-drop")
BASELINES = ("bm25", "edit-distance", "random")
INFLUENCE = ("ekfac", "kfac", "trackstar")  # the optional extra: pip install modeldiff[influence]
METHODS = MODEL_METHODS + BASELINES + INFLUENCE
FUSIONS = {"fused": "rrf", "zfused": "zsum"}  # fused:a+b = reciprocal-rank fusion, zfused:a+b = z-scored sum
AGGREGATES = ("mean", "top3", "all", "best")
POOLINGS = ("last", "mean", "span")
LOSSES = ("ce", "margin")
CHECKPOINTS = ("new", "old", "both")  # --trackstar-checkpoint: where TrackStar's gradients are taken
# the default: every method fast on CPU (one shared Δh / g / loss extraction; TrackStar's batched Bergson gradients
# at both checkpoints), plus the best fused ranking on the hops benchmarks (docs/attribute.md): the z-scored sum of
# BM25 (finds a query's own documents by its words), the gradient similarity and TrackStar (find the documents the
# answer's computation runs through, the partner's among them) and loss-drop (demotes the documents the base
# already knew: they cannot have taught the change). TrackStar needs the optional extra (Bergson): without it the
# default fuses the other three, so a plain install still runs.
FAST_METHODS = "delta-h,grad,delta-h-x-grad,loss-drop,bm25,edit-distance,random"
BEST_FUSED = "zfused:bm25+grad+trackstar+loss-drop"
WITH_TRACKSTAR = FAST_METHODS + ",trackstar," + BEST_FUSED
WITHOUT_TRACKSTAR = FAST_METHODS + ",zfused:bm25+grad+loss-drop"


def default_methods() -> str:
    """The default --method list: with Bergson installed (checked without importing it), TrackStar and the
    three-way fusion; otherwise the two-way one."""
    import importlib.util

    return WITH_TRACKSTAR if importlib.util.find_spec("bergson") is not None else WITHOUT_TRACKSTAR


DEFAULT_METHODS = default_methods()
FUSION_HELP = ("fused:A+B[+C...] (reciprocal-rank fusion of the listed methods' rankings) and zfused:A+B[+C...] "
               "(sum of their per-query z-scored scores), any of the methods above as components, e.g. "
               "fused:bm25+grad, " + BEST_FUSED)


def parse_methods(spec: str) -> list[str]:
    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise UserError("--method: give at least one method")
    for m in names:
        if m in METHODS:
            continue
        parts = fusion_parts(m)
        if parts is None:
            raise UserError(f"--method {m!r}: unknown method; valid: {', '.join(METHODS)}, "
                            "fused:A+B[+C...] (reciprocal-rank fusion), zfused:A+B[+C...] (z-scored sum)")
    return list(dict.fromkeys(names))


def fusion_parts(name: str) -> list[str] | None:
    """The component methods of ``fused:A+B[+C]`` / ``zfused:A+B`` (None: not a fusion); UserError when malformed."""
    head, sep, rest = name.partition(":")
    if not sep or head not in FUSIONS:
        return None
    parts = list(dict.fromkeys(p.strip() for p in rest.split("+") if p.strip()))
    bad = [p for p in parts if p not in METHODS]
    if bad:
        raise UserError(f"--method {name!r}: unknown component {bad[0]!r}; valid: {', '.join(METHODS)}")
    if len(parts) < 2:
        raise UserError(f"--method {name!r}: a fusion needs two or more methods, e.g. {head}:bm25+grad")
    return parts


def base_methods(names: list[str]) -> list[str]:
    """Every non-fused method that must be computed (the listed ones and the fusions' components), in order."""
    out: list[str] = []
    for m in names:
        out.extend(fusion_parts(m) or [m])
    return list(dict.fromkeys(out))


def parse_pooling(spec: str) -> tuple[str, str]:
    """``P`` for both sides or ``TRAIN:QUERY`` (e.g. ``mean:span``)."""
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p not in POOLINGS for p in parts):
        raise UserError(f"--pooling {spec!r}: expected last, mean or span, or TRAIN:QUERY such as mean:span")
    return parts[0], parts[1]


def parse_ks(spec: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in spec.split(",") if k.strip()})
    except ValueError:
        raise UserError(f"--k {spec!r}: expected a comma list of positive integers") from None
    if not ks or ks[0] < 1:
        raise UserError(f"--k {spec!r}: expected a comma list of positive integers")
    return ks


def parse_inputs(spec: str) -> list[str]:
    """``--inputs`` of `attribute queries`: the distinct comma-separated values, in order."""
    xs = [x.strip() for x in spec.split(",") if x.strip()]
    if not xs:
        raise UserError(f"--inputs {spec!r}: give a comma list of inputs, e.g. 1,2,3")
    return list(dict.fromkeys(xs))
