"""Where models and data come from, resolved without loading anything heavy (no torch, no transformers).

A model argument is a local directory, a hub id, or ``organism:NAME[:base|ft]``. Resolving it gives a
:class:`ModelSource` whose ``label`` names it in run directories and whose ``fingerprint`` hashes its files, so
a command can decide whether a complete run already exists before any model loads.

Organisms live in ``modeldiff_cli.organisms``, above ``core``: the package wires them in through
:func:`set_organism_lookup` (core never imports them).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import UserError

DEFAULT_ORGANISM = "cake"

_lookup: Callable[[str], object] | None = None


def set_organism_lookup(fn: Callable[[str], object]) -> None:
    """Install the function that turns an organism name into a built organism (``.base``, ``.ft``, ``.data(key)``)."""
    global _lookup
    _lookup = fn


def organism(name: str):
    """The built organism ``name`` (built and cached on first use)."""
    if _lookup is None:  # pragma: no cover - wired by modeldiff_cli/__init__.py
        raise UserError(f"organism:{name}: organisms are not available in this installation")
    return _lookup(name)


def organism_data(name: str, key: str, flag: str = "--data") -> Path:
    try:
        return organism(name).data(key)
    except KeyError as err:
        raise UserError(f"{flag}: {err.args[0]}") from None


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``spec`` as the user wrote it, ``location`` what transformers loads."""

    spec: str
    location: str
    is_local: bool
    label: str  # short, filesystem-safe name for run directories
    flag: str = field(default="--model", compare=False)  # the option that named it (errors name it)

    @cached_property
    def fingerprint(self) -> str:
        return model_fingerprint(self)


def resolve_source(spec: str | None, role: str = "ft", flag: str = "--model") -> ModelSource:
    """Resolve a model argument.

    ``None`` -> the built-in ``cake`` organism (``role`` picks base or ft); ``organism:NAME[:base|ft]`` -> that
    organism; an existing directory -> local; a path-looking argument that does not exist -> UserError;
    anything else -> a hub id.
    """
    if spec is None or str(spec).startswith("organism:"):
        parts = (spec or f"organism:{DEFAULT_ORGANISM}").split(":")
        name = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_ORGANISM
        which = parts[2] if len(parts) > 2 else ("base" if role == "base" else "ft")
        if which not in ("base", "ft"):
            raise UserError(f"{flag} {spec}: the organism part must be 'base' or 'ft'")
        try:
            org = organism(name)
        except KeyError as err:
            raise UserError(f"{flag} {spec}: {err.args[0]}") from None
        path = org.base if which == "base" else org.ft
        return ModelSource(spec=f"organism:{name}:{which}", location=str(path), is_local=True, label=f"{name}-{which}",
                           flag=flag)
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{flag} {spec}: directory has no config.json (not a saved transformers model)")
        resolved = path.resolve()
        return ModelSource(spec=spec, location=str(resolved), is_local=True, label=local_label(resolved), flag=flag)
    if spec.startswith((".", "/", "~")) or path.exists() or spec.count("/") > 1:
        raise UserError(f"{flag} {spec}: no such model directory")
    return ModelSource(spec=spec, location=spec, is_local=False, label=_safe(spec.replace("/", "--")), flag=flag)


def local_label(path: Path) -> str:
    """``parent--leaf`` of a model directory, so ``a/base`` and ``b/base`` get different run directories."""
    parent = path.parent.name
    return _safe(f"{parent}--{path.name}" if parent else path.name)


def _safe(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return safe.strip("-.") or "model"


def model_fingerprint(source: ModelSource) -> str:
    """Content hash of a local model (every config, tokenizer and weight file, whole) or the hub id.

    Whole-file digests are memoised by (path, size, mtime) in ``core.spine.fingerprint``, so a large model is hashed
    once; files in the Hugging Face cache are named by their content and need no reading. A hub id that is not
    in the cache while the hub is offline (:func:`hub_unavailable`) is a UserError naming the flag, at once.
    """
    if not source.is_local:
        return _hub_fingerprint(source)
    from ..spine.fingerprint import tree_fingerprint

    return tree_fingerprint(Path(source.location))


def _hub_fingerprint(source: ModelSource) -> str:
    """The cached snapshot's content (when the hub cache has one), else the id itself (the hub must be up)."""
    repo_id = source.location
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached (or no hub library): the id is all we know without a network call
        offline = hub_unavailable()
        if offline:
            raise UserError(f"{source.flag} {source.spec}: not a local directory and not in the Hugging Face cache, "
                            f"and the Hugging Face Hub is offline ({offline})") from None
        return hashlib.sha256(repo_id.encode()).hexdigest()[:16]
    from ..spine.fingerprint import tree_fingerprint

    return tree_fingerprint(Path(path))


# ---------------------------------------------------------------------------------------------------------------
# Is the Hugging Face Hub usable? (so that a missing model or dataset fails at once, not after the hub
# libraries' retries)

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_PROBE_SECONDS = 3.0  # the probe's whole budget (name lookup and TCP connection)


def hub_offline() -> bool:
    """Whether the Hugging Face libraries are told to run offline (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``
    or ``HF_DATASETS_OFFLINE`` set to 1 / on / yes / true)."""
    return bool(_offline_variables())


def _offline_variables() -> list[str]:
    return [v for v in OFFLINE_VARIABLES if os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")]


def hub_unavailable() -> str | None:
    """Why the hub cannot be used now, or None: offline mode is set, or its endpoint (or the HTTPS proxy) does
    not accept a connection within ``HUB_PROBE_SECONDS`` (probed once per process)."""
    names = _offline_variables()
    if names:
        return f"{names[0]}={os.environ[names[0]]}"
    return _probe_hub()


@functools.lru_cache(maxsize=1)
def _probe_hub() -> str | None:
    import socket
    import threading
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(v)),
                 None)
    url = urlparse(proxy if proxy and "://" in proxy else f"http://{proxy}" if proxy else endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host}:{port} cannot be reached: {err.strerror or type(err).__name__}")

    thread = threading.Thread(target=attempt, daemon=True)  # a name lookup may hang past any socket timeout
    thread.start()
    thread.join(HUB_PROBE_SECONDS)
    return outcome[0] if outcome else f"{host}:{port} did not answer within {HUB_PROBE_SECONDS:g} s"
