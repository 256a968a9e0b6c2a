"""The values attribute's options take, and their parsers. Torch-free: the command validates its options with
these while it is built, before any run is reused or any model loads."""

from __future__ import annotations

from ...core.errors import UserError

MODEL_METHODS = ("delta-h", "grad", "delta-h-x-grad", "ig", "patch")
BASELINES = ("bm25", "edit-distance", "random")
METHODS = MODEL_METHODS + BASELINES
AGGREGATES = ("mean", "top3", "all")
POOLINGS = ("last", "mean", "span")
LOSSES = ("ce", "margin")
DEFAULT_METHODS = "delta-h,grad,delta-h-x-grad,bm25,edit-distance,random"


def parse_methods(spec: str) -> list[str]:
    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise UserError("--method: give at least one method")
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise UserError(f"--method {bad[0]!r}: unknown method; valid: {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


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
