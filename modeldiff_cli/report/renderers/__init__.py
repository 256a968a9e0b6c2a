"""Per-command renderers; importing this package registers them all."""

from . import attribute, generic, info, interpret, lens, mine, nll, routing, tokenlens  # noqa: F401
