"""`modeldiff tokenlens` (being built)."""


def register(app) -> None:
    """Placeholder until the command lands."""
