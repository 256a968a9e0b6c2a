"""Tensor cache in safetensors files, keyed by fingerprints (model, data, extraction settings).

Each entry is one ``NAME.safetensors`` file whose metadata stores the key it was built for. Loading an entry
whose stored key differs from the requested one is an error (never a silent reuse of stale tensors).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ...core.errors import UserError

KEY_FIELD = "modeldiff_key"


def _canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


class TensorCache:
    """A directory of named tensor bundles. ``get`` returns None when absent, raises on a key mismatch."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def path(self, name: str) -> Path:
        return self.root / f"{name}.safetensors"

    def get(self, name: str, key: dict) -> dict[str, torch.Tensor] | None:
        from safetensors import safe_open

        path = self.path(name)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as fh:
                stored = (fh.metadata() or {}).get(KEY_FIELD)
                if stored != _canonical(key):
                    diff = _describe_mismatch(stored, key)
                    raise UserError(
                        f"cache {path} was built for different inputs ({diff}); delete it or use another cache directory"
                    )
                return {k: fh.get_tensor(k) for k in fh.keys()}
        except UserError:
            raise
        except Exception as err:  # truncated / corrupt file
            raise UserError(f"cache {path} cannot be read ({type(err).__name__}); delete it") from None

    def put(self, name: str, key: dict, tensors: dict[str, torch.Tensor]) -> Path:
        from safetensors.torch import save_file

        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(contiguous, tmp, metadata={KEY_FIELD: _canonical(key)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def _describe_mismatch(stored: str | None, key: dict) -> str:
    if not stored:
        return "no key stored"
    try:
        old = json.loads(stored)
    except json.JSONDecodeError:
        return "unreadable key"
    changed = sorted(k for k in set(old) | set(key) if old.get(k) != json.loads(_canonical({k: key.get(k)}))[k])
    return "differs in " + ", ".join(changed[:5]) if changed else "key differs"
