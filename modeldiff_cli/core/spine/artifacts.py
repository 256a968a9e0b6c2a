"""The only place that writes files: JSON, CSV, NPZ, PNG, text. Every writer creates parent directories
and writes atomically (temporary file in the same directory, then ``os.replace``)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from ..errors import UserError
from .timing import stage


def _staged(name: str):
    """Charge a writer's time (serialising included) to the run's stage ``name`` (``core.spine.timing``)."""
    def wrap(fn):
        @wraps(fn)
        def timed(*args, **kwargs):
            with stage(name):
                return fn(*args, **kwargs)
        return timed
    return wrap


@contextmanager
def _atomic(path: Path, mode: str = "w"):
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(obj):
    """JSON-safe values: numpy/torch scalars and arrays to Python, NaN/inf to None, paths to str."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@_staged("write files")
def write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    path = Path(path)
    with _atomic(path) as fh:
        json.dump(_clean(obj), fh, indent=indent, ensure_ascii=False)
        fh.write("\n")
    return path


@_staged("write files")
def write_jsonl(path: str | Path, rows: Iterable) -> Path:
    path = Path(path)
    with _atomic(path) as fh:
        for row in rows:
            fh.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")
    return path


@_staged("write files")
def write_csv(path: str | Path, rows: list[Mapping], columns: list[str] | None = None) -> Path:
    path = Path(path)
    columns = columns or (list(rows[0].keys()) if rows else [])
    with _atomic(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(_clean(dict(row)))
    return path


@_staged("write files")
def write_npz(path: str | Path, **arrays) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    import numpy as np

    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    with _atomic(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


@_staged("write files")
def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with _atomic(path) as fh:
        fh.write(text)
    return path


@_staged("save figures")
def save_figure(path: str | Path, fig, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    with _atomic(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


def read_json(path: str | Path, flag: str | None = None):
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{flag + ' ' if flag else ''}{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON ({err.msg}, line {err.lineno})") from None


@_staged("import matplotlib")
def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (imported lazily)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # colour-blind-safe palette for every command's figures (Okabe-Ito style, matplotlib's built-in sheet)
    plt.style.use("tableau-colorblind10")
    return plt
