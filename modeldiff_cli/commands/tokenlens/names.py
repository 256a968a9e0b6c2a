"""The names tokenlens accepts, importable without torch (the CLI checks options before anything heavy loads)."""

from __future__ import annotations

NATIVE_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")  # what the native engine implements
SCORES = ("probability", "logit", "logprob")  # the attributed output of each step
ENGINES = ("auto", "native", "inseq")


def resolved_engine(method: str, engine: str) -> str:
    """``auto`` -> native for the methods it implements, inseq otherwise (no inseq import needed)."""
    if engine == "auto":
        return "native" if method in NATIVE_METHODS else "inseq"
    return engine
