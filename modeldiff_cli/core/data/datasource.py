"""Data sources, read without torch: what a ``--data`` value names, its records, name and fingerprint.

Accepted ``--data`` sources (``parse_source``), all read lazily so ``--max-samples`` reads only that many:
- plain text (``.txt`` or any other suffix): one sample per non-empty line;
- JSONL (``.jsonl``/``.json``) with a text field (``--text-field``, default ``text``), or chat records with
  ``messages: [{role, content}, ...]``;
- CSV/TSV and Parquet with a text column named by ``--text-field`` (or a ``messages`` column); the other columns
  are kept in ``Record.fields``, ``Record.line`` is the 1-based row number;
- a directory written by ``datasets``' ``save_to_disk`` (a DatasetDict: split ``train``, or ``DIR:SPLIT``);
- a hub dataset ``hf:NAME[:CONFIG][:SPLIT]`` (default split ``train``) through ``datasets``: streamed when
  online, from the Hugging Face cache when offline.
``datasets`` and ``pyarrow`` are imported only when such a source is read.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..model.sources import hub_offline, hub_unavailable  # noqa: F401 (hub_offline: re-exported)
from ..spine.fingerprint import dir_fingerprint, file_digest


@dataclass
class Record:
    """One raw sample: its text, or its chat messages, and the source line for error messages."""

    line: int
    text: str | None = None
    messages: list[dict] | None = None
    fields: dict = field(default_factory=dict)


def file_fingerprint(path: Path) -> str:
    """16-hex prefix of the whole file's sha256 (memoised, see ``core.spine.fingerprint.file_digest``)."""
    return file_digest(path)[:16]


def iter_jsonl(path: str | Path, flag: str = "--data") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-empty line of a JSONL file; a missing file, malformed JSON or a
    non-object line raises UserError naming the flag or ``file:line``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, obj


# ---------------------------------------------------------------------------------------------------------------
# Sources: what a --data value names


@dataclass(frozen=True)
class Source:
    """A parsed ``--data`` value: a file (by format), a ``save_to_disk`` directory, or a hub dataset."""

    spec: str  # as the user wrote it
    kind: str  # text | jsonl | csv | parquet | saved | hf
    path: Path | None = None  # files and saved directories
    name: str | None = None  # hub dataset id
    config: str | None = None
    split: str | None = None


_SPLIT_NAMES = {"train", "test", "validation", "valid", "dev"}
_SUFFIX_KINDS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def parse_source(spec: str | Path, flag: str = "--data") -> Source:
    """What ``spec`` names; a missing file or directory raises ``UserError("{flag} {spec}: no such file")``.

    ``hf:NAME[:CONFIG][:SPLIT]`` is a hub dataset (default split ``train``; a single extra part is the split when
    it is a usual split name - train, test, validation, valid, dev - or a slice like ``train[:100]``, else the
    config). A directory written by ``save_to_disk`` may be followed by ``:SPLIT`` for a DatasetDict.
    """
    text = str(spec)
    if text.startswith("hf:"):
        return _parse_hub(text, flag)
    path = Path(text).expanduser()
    if path.is_file():
        return Source(text, _SUFFIX_KINDS.get(path.suffix.lower(), "text"), path)
    if path.is_dir():
        return Source(text, "saved", path)
    head, sep, split = text.rpartition(":")
    if sep and split and Path(head).expanduser().is_dir():
        return Source(text, "saved", Path(head).expanduser(), split=split)
    raise UserError(f"{flag} {text}: no such file")


def _parse_hub(spec: str, flag: str) -> Source:
    parts = spec[3:].split(":")
    if not parts[0] or len(parts) > 3:
        raise UserError(f"{flag} {spec}: expected hf:NAME[:CONFIG][:SPLIT]")
    name, config, split = parts[0], None, None
    if len(parts) == 3:
        config, split = parts[1] or None, parts[2] or None
    elif len(parts) == 2 and parts[1]:
        is_split = parts[1] in _SPLIT_NAMES or "[" in parts[1]
        config, split = (None, parts[1]) if is_split else (parts[1], None)
    return Source(spec, "hf", name=name, config=config, split=split or "train")


def dataset_name(spec: str | Path) -> str:
    """A filesystem-safe short name: the file stem (without .jsonl/.json/.txt/.csv/.parquet), the directory
    name, or ``org--name-config-split`` for ``hf:org/name:config:split``."""
    text = str(spec)
    if text.startswith("hf:"):
        stem = "-".join(p for p in text[3:].split(":") if p).replace("/", "--")
    else:
        path = Path(text)
        if not path.exists() and ":" in path.name and Path(text.rpartition(":")[0]).is_dir():
            head, _, split = text.rpartition(":")
            stem = f"{Path(head).name}-{split}"
        else:
            stem = path.name
            for suffix in (".jsonl", ".json", ".txt", ".csv", ".tsv", ".parquet", ".pq"):
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip(".")
    return safe or "data"


# ---------------------------------------------------------------------------------------------------------------
# Reading records


def read_records(
    path: str | Path, text_field: str = "text", flag: str = "--data", max_samples: int | None = None
) -> list[Record]:
    """Read raw records from any source (see ``parse_source``), at most ``max_samples`` of them, streaming.

    Missing/empty sources, malformed JSON, missing fields or columns raise UserError naming the flag or
    ``file:line`` (``file:row N`` for tabular sources).
    """
    source = parse_source(path, flag)
    rows = _iter_rows(source, text_field, flag, max_samples)
    records = list(itertools.islice(rows, max_samples)) if max_samples is not None else list(rows)
    if not records:
        what = "file" if source.kind in ("text", "jsonl", "csv", "parquet") else "dataset"
        raise UserError(f"{flag} {source.spec}: the {what} holds no samples")
    return records


def _iter_rows(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    readers = {"text": _read_text, "jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet,
               "saved": _read_saved, "hf": _read_hub}
    return readers[source.kind](source, text_field, flag, max_samples)


def _read_text(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    with source.path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield Record(line=lineno, text=line.rstrip("\n"))


def _read_jsonl(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    for lineno, obj in iter_jsonl(source.path, flag):
        yield _record_from(obj, f"{source.path}:{lineno}", lineno, text_field)


def _read_csv(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    """CSV/TSV rows through the csv module (lazily, one row at a time); the header names the columns."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    delimiter = "\t" if source.path.suffix.lower() == ".tsv" else ","
    with source.path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        _check_columns(reader.fieldnames or [], source, text_field, flag)
        try:
            for row_no, row in enumerate(reader, 1):
                yield _record_from(row, f"{source.path}:row {row_no}", row_no, text_field)
        except csv.Error as err:
            raise UserError(f"{source.path}:row {reader.line_num}: malformed CSV ({err})") from None


def _read_parquet(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    """Parquet rows in record batches (``ParquetFile.iter_batches``): only about ``max_samples`` rows are read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:  # pre_buffer off: read pages as needed, not a whole row group's column chunks up front
        pf = pq.ParquetFile(source.path, pre_buffer=False)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{flag} {source.spec}: not a readable Parquet file ({_first_line(err)})") from None
    _check_columns(pf.schema_arrow.names, source, text_field, flag)
    batch_size = max(1, min(max_samples or 4096, 4096))
    row_no = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            row_no += 1
            yield _record_from(row, f"{source.path}:row {row_no}", row_no, text_field)


def _read_saved(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    """A directory written by ``datasets`` ``save_to_disk`` (memory-mapped); a DatasetDict gives its split."""
    ds = _load_saved(source, flag)
    _check_columns(ds.column_names, source, text_field, flag)
    n = len(ds) if max_samples is None else min(max_samples, len(ds))
    yield from _records_of(ds.select(range(n)) if n < len(ds) else ds, source.spec, text_field)


def _quiet_datasets():
    """``datasets``, imported with its progress bars and advice off the terminal (unless DATASETS_VERBOSITY)."""
    import datasets

    datasets.disable_progress_bars()
    if not os.environ.get("DATASETS_VERBOSITY"):
        datasets.logging.set_verbosity_error()
    return datasets


def _load_saved(source: Source, flag: str):
    datasets = _quiet_datasets()
    try:
        ds = datasets.load_from_disk(str(source.path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise UserError(f"{flag} {source.spec}: not a dataset saved with datasets' save_to_disk ({_first_line(err)})") from None
    if isinstance(ds, datasets.DatasetDict):
        split = source.split or "train"
        if split not in ds:
            raise UserError(f"{flag} {source.spec}: no split {split!r} (splits: {', '.join(ds) or 'none'}); pass DIR:SPLIT")
        return ds[split]
    if source.split is not None:
        raise UserError(f"{flag} {source.spec}: the saved dataset has no splits; drop ':{source.split}'")
    return ds


def _read_hub(source: Source, text_field: str, flag: str, max_samples: int | None) -> Iterator[Record]:
    """A hub dataset through ``datasets``: streamed when online, from the local cache when offline."""
    ds = _load_hub(source, flag)
    columns = getattr(ds, "column_names", None)
    if columns:
        _check_columns(columns, source, text_field, flag)
    if max_samples is not None and hasattr(ds, "select"):
        ds = ds.select(range(min(max_samples, len(ds))))
    yield from _records_of(ds, source.spec, text_field)


def _load_hub(source: Source, flag: str):
    """Offline: the cached (memory-mapped) split. Online: a streaming split (nothing is downloaded whole)."""
    datasets = _quiet_datasets()

    offline = hub_offline()
    try:
        return _cached_hub_split(source.name, source.config, source.split) if offline else datasets.load_dataset(
            source.name, source.config, split=source.split, streaming=True)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError, ...)
        where = "(offline or not in the Hugging Face cache)" if offline else "from the Hugging Face Hub"
        raise UserError(f"{flag} {source.spec}: dataset could not be loaded {where}: {_first_line(err)}") from None


@functools.lru_cache(maxsize=4)
def _cached_hub_split(name: str, config: str | None, split: str):
    datasets = _quiet_datasets()
    return datasets.load_dataset(name, config, split=split)


def _records_of(rows, spec: str, text_field: str) -> Iterator[Record]:
    for row_no, row in enumerate(rows, 1):
        yield _record_from(dict(row), f"{spec}:row {row_no}", row_no, text_field)


def _check_columns(columns: list[str], source: Source, text_field: str, flag: str) -> None:
    """A tabular source must have the text column (or a chat ``messages`` column)."""
    if text_field not in columns and "messages" not in columns:
        cols = ", ".join(columns) or "none"
        raise UserError(f"{flag} {source.spec}: no column {text_field!r} (columns: {cols}); set --text-field")


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _record_from(obj: dict, where: str, lineno: int, text_field: str) -> Record:
    """A Record from one JSON object or table row; ``where`` (``file:line`` / ``file:row N``) names it in errors."""
    if text_field in obj:
        text = obj[text_field]
        if not isinstance(text, str):
            raise UserError(f"{where}: field {text_field!r} is not a string")
        return Record(line=lineno, text=text, fields=obj)
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise UserError(f"{where}: 'messages' must be a list of {{role, content}} objects")
        return Record(line=lineno, messages=msgs, fields=obj)
    keys = ", ".join(sorted(obj)) or "none"
    raise UserError(f"{where}: no field {text_field!r} (fields: {keys}); set --text-field")


def source_fingerprint(
    spec: str | Path, text_field: str, max_samples: int | None, max_tokens: int | None, positions_before: int = 0,
    flag: str = "--data",
) -> str:
    """16-hex fingerprint of a data source and the reading options, without a tokenizer.

    Files: the whole-file digest; directories: every file's digest; hub datasets: the spec plus, when it loads
    from the local cache (offline), the dataset's own ``_fingerprint``. A hub dataset that cannot be had (offline
    and not cached, or the hub unreachable) is a UserError naming ``flag``, before any model loads.
    """
    source = parse_source(spec, flag)
    if source.kind == "hf":
        content = f"{source.name}:{source.config}:{source.split}:{_hub_fingerprint(source, flag)}"
    elif source.kind == "saved":
        content = f"{dir_fingerprint(source.path)}:{source.split}"
    else:
        content = file_digest(source.path)
    opts = json.dumps([text_field, max_samples, max_tokens, positions_before])
    return hashlib.sha256((content + opts).encode()).hexdigest()[:16]


def _hub_fingerprint(source: Source, flag: str = "--data") -> str:
    if Path(source.name).expanduser().is_dir():  # a local dataset repository: no hub involved
        return ""
    if not hub_offline():
        offline = hub_unavailable()
        if offline:
            raise UserError(f"{flag} {source.spec}: the Hugging Face Hub is offline ({offline}) and datasets are read "
                            "from it (streamed) when online; set HF_HUB_OFFLINE=1 to read the cached copy")
        return ""
    try:
        return str(getattr(_cached_hub_split(source.name, source.config, source.split), "_fingerprint", ""))
    except Exception as err:  # not cached: fail now, before any model loads
        raise UserError(f"{flag} {source.spec}: not in the Hugging Face cache, and the Hugging Face Hub is offline "
                        f"({hub_unavailable()}): {_first_line(err)}") from None
