"""Content fingerprints that cannot lie: whole-file sha256 digests, memoised by file identity.

``file_digest`` hashes every byte of a file, once: the digest is remembered in a small JSON cache keyed by the
file's absolute path, size, mtime and ctime, so a 10 GB checkpoint is read again only after it changed. The cache
lives in ``$MODELDIFF_CACHE_DIR/digests.json`` (default ``~/.cache/modeldiff/digests.json``); it is written
atomically and a corrupt or unwritable cache only means no memo. A file modified within ``RACY_S`` seconds of
being hashed is not memoised (a second write in the same timestamp tick could go unseen), so a file saved and
re-saved in place within a second is still told apart.

Files in a Hugging Face hub cache are content-addressed: a symlink into a ``blobs/`` directory whose blob name
is a 64-hex sha256 uses that name as its digest without being read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken")
RACY_S = 2.0  # files modified this recently before hashing are not memoised
MAX_ENTRIES = 4096  # the memo keeps the most recently hashed files
_CHUNK = 8 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_file() -> Path:
    """Where the digest memo lives: ``$MODELDIFF_CACHE_DIR/digests.json`` or ``~/.cache/modeldiff/digests.json``."""
    root = os.environ.get("MODELDIFF_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "modeldiff"
    return base / "digests.json"


def _load_memo(path: Path) -> dict:
    """The memo's entries, or an empty dict when the file is missing, unreadable or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _store_memo(path: Path, key: str, entry: dict) -> None:
    """Merge one entry into the memo on disk (tmp file + os.replace); any OS error leaves the memo as it was."""
    entries = _load_memo(path)
    entries[key] = entry
    if len(entries) > MAX_ENTRIES:
        keep = sorted(entries, key=lambda k: _hashed_at(entries[k]), reverse=True)[:MAX_ENTRIES]
        entries = {k: entries[k] for k in keep}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"version": 1, "entries": entries}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _hashed_at(entry) -> float:
    """When a memo entry was hashed (0 for entries not of our making)."""
    value = entry.get("hashed_at") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) else 0.0


def _identity(st: os.stat_result) -> dict:
    """What must be unchanged for a memoised digest to still hold."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def hub_blob_digest(path: Path) -> str | None:
    """The sha256 a hub-cache symlink names (``.../blobs/<64 hex>``), or None for any other file."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.parent.name == "blobs" and _SHA256.fullmatch(target.name) and target.is_file():
        return target.name
    return None


def sha256_file(path: Path) -> str:
    """sha256 (hex) of every byte of the file."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of the whole file, memoised by (absolute path, size, mtime, ctime); hub blobs by name."""
    path = Path(path)
    blob = hub_blob_digest(path)
    if blob is not None:
        return blob
    key = os.path.abspath(path)
    before = os.stat(path)
    memo_path = cache_file()
    entry = _load_memo(memo_path).get(key)
    if isinstance(entry, dict) and entry.get("id") == _identity(before) and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    started = time.time()
    digest = sha256_file(path)
    after = os.stat(path)
    stable = _identity(after) == _identity(before)
    if stable and started - after.st_mtime_ns / 1e9 > RACY_S:
        _store_memo(memo_path, key, {"id": _identity(after), "sha256": digest, "hashed_at": started})
    return digest


def files_fingerprint(root: Path, files: Iterable[Path]) -> str:
    """16-hex digest over (path relative to ``root``, digest) of each file, sorted by name."""
    rows = sorted((f.relative_to(root).as_posix(), file_digest(f)) for f in files)
    h = hashlib.sha256()
    for name, digest in rows:
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()[:16]


def tree_fingerprint(root: Path) -> str:
    """16-hex digest of a model directory: name + whole-file digest of each config, weight and tokenizer file."""
    root = Path(root)
    files = [f for f in root.iterdir() if f.is_file() and not f.name.startswith(".") and f.name.endswith(MODEL_SUFFIXES)]
    return files_fingerprint(root, files)


def dir_fingerprint(root: Path) -> str:
    """16-hex digest of every (non-hidden) file under ``root``, recursively: e.g. a saved ``datasets`` directory."""
    root = Path(root)
    files = [f for f in root.rglob("*") if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts)]
    return files_fingerprint(root, files)
