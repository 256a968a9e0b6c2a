"""What `info` writes, declared once (``core.spine.declared``): the writer (``commands/info.py``), summary.json's
description, ``--help`` and the report's renderer (``report/renderers/info.py``, also the index's pair header)
read its name and keys here. Light: no torch, no typer."""

from __future__ import annotations

from ..core.spine.declared import Artifact

# what --json prints: each side's facts (the table's rows), the tokenizer relation, shared vocabulary, the verdict
KEYS = ("base", "ft", "tokenizer_relation", "shared_vocab", "tokenizer_class", "compatible", "reasons", "notes")

INFO = Artifact(
    "info.json", "payload", "both models' facts (architecture, parameters, layers, sizes, dtype, tokenizer, "
    "fingerprint), the tokenizer relation, shared vocabulary and the verdict",
    columns=KEYS)

ARTIFACTS = (INFO,)
