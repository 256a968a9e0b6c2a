"""modeldiff: what changed between a base and a fine-tuned language model, where, and why."""

__version__ = "0.1.0"
