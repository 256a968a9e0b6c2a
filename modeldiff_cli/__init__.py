"""modeldiff: what changed between a base and a fine-tuned language model, where, and why."""

__version__ = "0.1.0"


def _organism(name: str):
    """Organisms live above core; core reaches them only through this hook (imported lazily)."""
    from .organisms import get_organism

    return get_organism(name)


def _wire() -> None:
    from .core.model import sources

    sources.set_organism_lookup(_organism)


_wire()
