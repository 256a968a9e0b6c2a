"""Device parity: every number of every output file of each command, ``--device cpu`` vs the device under test.

Usage: python benchmarks/device_parity.py [--device cuda] [--out DIR] [--commands mine,lens,...] [--quick] [--jobs N]

For each command the CLI (``python -m modeldiff_cli ...``, a subprocess, on the project's organisms with small
settings) runs once with ``--device cpu`` and once with ``--device DEVICE``, into two ``--out`` roots; then both
roots are walked and every file is compared:

- JSON / JSONL: recursively. Numbers within the command's tolerance (``|a - b| <= abs + rel * max(|a|, |b|)``);
  integer fields named like counts (``count_positive``, ``positions_count``, ...) within their own absolute
  count tolerance (top-K counts move on near ties); other integers, strings and keys exactly (strings that differ
  only in printed numbers: each number within tolerance plus one unit of its last printed digit). A ranked list
  of records (``{"token_id", "ordering_value", ...}``) whose order differs is matched by its records' identity
  (their string / integer fields) and passes, reported as a note, when the matched values are within tolerance and
  each record that entered or left the list sits at the cut-off within tolerance.
- CSV: per cell, numeric columns with tolerance. NPZ / NPY / safetensors: per array (shape, dtype kind, values).
- Markdown / text: line by line as strings (numbers within tolerance, see above).
- Not compared: PNG / HTML / SVG (renderings of the compared numbers), keys that are timings, devices or
  thread counts (``timings``, ``seconds``, ``finished_at``, ``device``, ...) and whatever a command's policy below
  leaves out with its reason (e.g. what ``interpret``'s trained crosscoder decides). The two ``--out`` roots are
  replaced by ``<OUT>`` in strings, so paths compare equal.

``--device cpu`` is the dry run: cpu against cpu, every difference must be 0. Prints one table (command, files
compared, numbers compared, max abs / rel / count diff, tolerance, PASS/FAIL), writes the full report to
``OUT/device_parity.json`` and exits 1 if any command FAILs. The comparison functions (``compare_values``,
``compare_files``, ``compare_trees``) are importable; tests/test_device_parity.py tests them.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------------------
# tolerances and per-command policies


@dataclass(frozen=True)
class Tol:
    """Two numbers agree when ``|a - b| <= abs + rel * max(|a|, |b|)``."""

    rel: float
    abs: float

    def ok(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= self.abs + self.rel * max(abs(a), abs(b))

    def __str__(self) -> str:
        return f"rel {self.rel:g} + abs {self.abs:g}"


EXACT = Tol(0.0, 0.0)
# keys never compared anywhere: timings, clocks, devices, threads, byte sizes of files (float repr lengths)
SKIP_KEYS = re.compile(r"^(timings|wall_s|seconds|.*_seconds|samples_per_s|.*_per_s|finished_at|started_at|timestamp"
                       r"|python|code_digest|peak_.*|device|devices|.*_device|threads|torch_threads|bytes|load_average|hostname)$")
COUNT_KEYS = re.compile(r"(^|_)counts?($|_)")
SKIP_SUFFIXES = {".png": "a plot of compared numbers", ".html": "a rendering of compared files",
                 ".svg": "a plot of compared numbers", ".pdf": "a plot of compared numbers"}
RANK_VALUE_KEYS = ("score", "ordering_value", "value", "z", "mean_logprob_diff", "diff")
# rates and clock readings printed inside text lines ("extraction 347.1 samples/s"): timings, not results
TIMING_TEXT = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*(?:samples|tokens|tok|docs|items|queries|it)/s\b")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
REL_FLOOR = 1e-3  # relative differences are reported for numbers of magnitude >= this (tiny ones would dominate)


def path_matches(rel: str, pattern: str) -> bool:
    """``pattern`` (fnmatch) matches the file's path relative to the run root, or its tail below any folder."""
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, "*/" + pattern)


@dataclass(frozen=True)
class Rule:
    """A tolerance for numbers under key ``key`` (fnmatch) in files matching ``files`` (fnmatch on the path)."""

    files: str
    key: str
    tol: Tol
    why: str = ""


@dataclass(frozen=True)
class Policy:
    """How one command's files are compared."""

    tol: Tol
    count_abs: float = 0.0
    rules: tuple[Rule, ...] = ()
    skip_files: tuple[tuple[str, str], ...] = ()  # (glob, reason)
    prepare: tuple[tuple[str, Callable[[Any], Any]], ...] = ()  # (glob, JSON filter) before comparing
    why: str = ""

    def tol_for(self, rel: str, key: str) -> Tol:
        for rule in self.rules:
            if path_matches(rel, rule.files) and fnmatch.fnmatch(key or "", rule.key):
                return rule.tol
        return self.tol

    def skip_reason(self, rel: str) -> str | None:
        for pattern, why in self.skip_files:
            if path_matches(rel, pattern):
                return why
        suffix = Path(rel).suffix.lower()
        return SKIP_SUFFIXES.get(suffix)

    def prepared(self, rel: str, obj: Any) -> Any:
        for pattern, fn in self.prepare:
            if path_matches(rel, pattern):
                obj = fn(obj)
        return obj


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass
class Stats:
    """What a comparison saw: numbers compared, the largest differences, failures and notes."""

    numbers: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    counts: int = 0
    max_count: float = 0.0
    strings: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_failures: int = 0

    def fail(self, msg: str) -> None:
        self.n_failures += 1
        if len(self.failures) < 20:
            self.failures.append(msg)

    def note(self, msg: str) -> None:
        if len(self.notes) < 20:
            self.notes.append(msg)

    def number(self, where: str, a: float, b: float, tol: Tol) -> None:
        self.numbers += 1
        if math.isnan(a) and math.isnan(b):
            return
        d = abs(a - b) if not (math.isinf(a) or math.isinf(b)) else (0.0 if a == b else math.inf)
        self.max_abs = max(self.max_abs, d)
        scale = max(abs(a), abs(b))
        if scale >= REL_FLOOR and d:
            self.max_rel = max(self.max_rel, d / scale)
        if not tol.ok(a, b):
            self.fail(f"{where}: {a!r} vs {b!r} (diff {d:.3g} > {tol})")

    def count(self, where: str, a: int, b: int, limit: float) -> None:
        self.counts += 1
        d = abs(a - b)
        self.max_count = max(self.max_count, d)
        if d > limit:
            self.fail(f"{where}: count {a} vs {b} (diff {d} > {limit:g})")

    @property
    def ok(self) -> bool:
        return self.n_failures == 0

    def merge(self, other: Stats) -> None:
        self.numbers += other.numbers
        self.counts += other.counts
        self.strings += other.strings
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.max_count = max(self.max_count, other.max_count)
        for f in other.failures:
            self.fail(f)
        self.n_failures += other.n_failures - len(other.failures)
        for n in other.notes:
            self.note(n)

    def as_dict(self) -> dict:
        return {"numbers": self.numbers, "counts": self.counts, "strings": self.strings, "max_abs": self.max_abs,
                "max_rel": self.max_rel, "max_count": self.max_count, "failures": self.n_failures,
                "failure_examples": self.failures, "notes": self.notes}


@dataclass
class Ctx:
    """The policy and file a comparison runs under; ``roots`` are replaced by <OUT> in strings."""

    policy: Policy
    rel: str = ""
    roots: tuple[str, ...] = ()
    skip_extra: frozenset = frozenset()

    def tol(self, key: str | None) -> Tol:
        return self.policy.tol_for(self.rel, key or "")

    def is_count(self, key: str | None) -> bool:
        return bool(key) and bool(COUNT_KEYS.search(key))

    def skip(self, key: str) -> bool:
        return bool(SKIP_KEYS.match(key)) or key in self.skip_extra

    def norm(self, s: str) -> str:
        for r in self.roots:
            if r:
                s = s.replace(r, "<OUT>")
        return TIMING_TEXT.sub("<rate>", s)


# --------------------------------------------------------------------------------------------------------------
# values


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (str, int, float, bool))


def compare_numbers(a: Any, b: Any, where: str, key: str | None, ctx: Ctx, st: Stats) -> None:
    if isinstance(a, int) and isinstance(b, int):
        if ctx.is_count(key):
            st.count(where, a, b, ctx.policy.count_abs)
        else:
            st.number(where, float(a), float(b), EXACT)
        return
    st.number(where, float(a), float(b), ctx.tol(key))


def compare_strings(a: str, b: str, where: str, key: str | None, ctx: Ctx, st: Stats) -> bool:
    """Equal after <OUT> normalisation, or equal but for printed numbers within tolerance (+1 unit of the last
    printed digit, for rounding; integers without a decimal point must be equal)."""
    st.strings += 1
    a, b = ctx.norm(a), ctx.norm(b)
    if a == b:
        return True
    if NUMBER.split(a) != NUMBER.split(b):
        if key == "lines" and ctx.rel.endswith("summary.json"):
            # the terminal lines render the headline, which is compared itself: a near-tie reorder is a note
            st.note(f"{where}: line differs beyond its numbers: {a[:100]!r} vs {b[:100]!r}")
            return True
        st.fail(f"{where}: {a[:120]!r} vs {b[:120]!r}")
        return False
    tol = ctx.tol(key)
    ok = True
    for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
        if x == y:
            continue
        mantissa = re.split(r"[eE]", x)[0]
        if "." not in mantissa and "e" not in x.lower():
            st.fail(f"{where}: {a[:120]!r} vs {b[:120]!r} (integer {x} vs {y})")
            return False
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        exp = int(re.split(r"[eE]", x)[1]) if re.search(r"[eE]", x) else 0
        unit = 10.0 ** (exp - decimals)
        fx, fy = float(x), float(y)
        st.number(f"{where} (text)", fx, fy, Tol(tol.rel, tol.abs + unit * 1.0001))
        ok = ok and Tol(tol.rel, tol.abs + unit * 1.0001).ok(fx, fy)
    return ok


def compare_values(a: Any, b: Any, ctx: Ctx, st: Stats, where: str = "$", key: str | None = None) -> None:
    """Compare two JSON values recursively into ``st`` (``a``: the cpu run, ``b``: the device run)."""
    if isinstance(a, dict) and isinstance(b, dict):
        ka = {k for k in a if not ctx.skip(k)}
        kb = {k for k in b if not ctx.skip(k)}
        for k in sorted(ka - kb):
            st.fail(f"{where}.{k}: only in the cpu run")
        for k in sorted(kb - ka):
            st.fail(f"{where}.{k}: only in the device run")
        for k in sorted(ka & kb, key=str):
            compare_values(a[k], b[k], ctx, st, f"{where}.{k}", k)
    elif isinstance(a, list) and isinstance(b, list):
        compare_lists(a, b, ctx, st, where, key)
    elif isinstance(a, bool) or isinstance(b, bool):
        if a is not b:
            st.fail(f"{where}: {a!r} vs {b!r}")
    elif _is_num(a) and _is_num(b):
        compare_numbers(a, b, where, key, ctx, st)
    elif isinstance(a, str) and isinstance(b, str):
        compare_strings(a, b, where, key, ctx, st)
    elif a is None and b is None:
        pass
    else:
        st.fail(f"{where}: {type(a).__name__} {str(a)[:60]!r} vs {type(b).__name__} {str(b)[:60]!r}")


def _positional(items: list[dict], k: str) -> bool:
    vals = [it.get(k) for it in items]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return False
    return vals in (list(range(len(vals))), list(range(1, len(vals) + 1)))


def _monotone(vals: list[float]) -> bool:
    return all(x >= y for x, y in zip(vals, vals[1:])) or all(x <= y for x, y in zip(vals, vals[1:]))


def _rank_key(a: list[dict], b: list[dict], keys: list[str]) -> tuple[str, Callable] | None:
    """The numeric field both lists are sorted by (value or |value|), preferring the usual names."""
    numeric = [k for k in keys if all(_is_num(it.get(k)) for it in a + b)]
    numeric.sort(key=lambda k: (k not in RANK_VALUE_KEYS, RANK_VALUE_KEYS.index(k) if k in RANK_VALUE_KEYS else 0))
    for k in numeric:
        for f in (lambda v: v, abs):
            if _monotone([f(it[k]) for it in a]) and _monotone([f(it[k]) for it in b]):
                return k, f
    return None


def compare_lists(a: list, b: list, ctx: Ctx, st: Stats, where: str, key: str | None) -> None:
    if all(_is_num(x) for x in a) and all(_is_num(x) for x in b) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            compare_numbers(x, y, f"{where}[{i}]", key, ctx, st)
        return
    trial = Stats()
    if len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            compare_values(x, y, ctx, trial, f"{where}[{i}]", key)
        if trial.ok:
            st.merge(trial)
            return
    else:
        trial.fail(f"{where}: {len(a)} vs {len(b)} items")
    if all(isinstance(x, str) for x in a + b):
        n = max(len(a), len(b))
        moved = set(a) ^ set(b)
        tail = all(min(a.index(x) if x in a else n, b.index(x) if x in b else n) >= 0.75 * n for x in moved)
        if len(a) == len(b) and (not moved or tail):
            st.strings += len(a)
            st.note(f"{where}: order differs ({sum(x != y for x, y in zip(a, b))} of {n} places"
                    f"{', ' + str(len(moved) // 2) + ' swapped at the tail' if moved else ''}; no values in the list)")
            return
        st.merge(trial)
        return
    if not (a and b and all(isinstance(x, dict) for x in a + b)):
        st.merge(trial)
        return
    matched = _match_records(a, b, ctx, where, key)
    if matched is None:
        st.merge(trial)
        return
    st.merge(matched)


def _match_records(a: list[dict], b: list[dict], ctx: Ctx, where: str, key: str | None) -> Stats | None:
    """A ranked list of records in another order: match by identity, check values and the cut-off."""
    keys = [k for k in a[0] if all(k in it for it in a + b) and not ctx.skip(k)]
    positional = {k for k in keys if _positional(a, k) and _positional(b, k)}
    ident = [k for k in keys if k not in positional and not ctx.is_count(k)
             and all(_is_scalar(it[k]) and not isinstance(it[k], float) for it in a + b)]
    if not ident:
        return None

    def ident_of(it: dict) -> tuple:
        return tuple(ctx.norm(it[k]) if isinstance(it[k], str) else it[k] for k in ident)

    ia, ib = [ident_of(it) for it in a], [ident_of(it) for it in b]
    if len(set(ia)) != len(ia) or len(set(ib)) != len(ib):
        return None
    out = Stats()
    inner = Ctx(ctx.policy, ctx.rel, ctx.roots, ctx.skip_extra | positional)
    pos_b = {x: j for j, x in enumerate(ib)}
    moved = 0
    for i, x in enumerate(ia):
        if x in pos_b:
            moved += pos_b[x] != i
            compare_values(a[i], b[pos_b[x]], inner, out, f"{where}[{i}~{pos_b[x]}]", key)
    only_a = [i for i, x in enumerate(ia) if x not in pos_b]
    set_a = set(ia)
    only_b = [j for j, x in enumerate(ib) if x not in set_a]
    if only_a or only_b:
        rk = _rank_key(a, b, keys)
        if rk is None:
            out.fail(f"{where}: {len(only_a)} records only in the cpu run, {len(only_b)} only in the device run "
                     f"(e.g. {ia[only_a[0]] if only_a else ib[only_b[0]]}), and no ranking value to check a cut-off")
            return out
        rkey, f = rk
        tol = ctx.tol(rkey)
        for side, items, other, idx in (("cpu", a, b, only_a), ("device", b, a, only_b)):
            cut = f(other[-1][rkey])
            for i in idx:
                v = f(items[i][rkey])
                if not tol.ok(v, cut):
                    out.fail(f"{where}: {ident_of(items[i])} only in the {side} run, {rkey} {v!r} is not at the "
                             f"other run's cut-off {cut!r} within {tol}")
    if out.ok:
        out.note(f"{where}: ranked list reordered on near ties ({moved} records moved, "
                 f"{len(only_a)} left and {len(only_b)} entered at the cut-off); values within tolerance")
    return out


# --------------------------------------------------------------------------------------------------------------
# files


def _load_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _arrays(path: Path) -> dict:
    import numpy as np

    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if suffix == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    from safetensors.torch import load_file

    return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in load_file(str(path)).items()}


def compare_arrays(a: dict, b: dict, ctx: Ctx, st: Stats, where: str) -> None:
    import numpy as np

    for k in sorted(set(a) ^ set(b)):
        st.fail(f"{where}:{k}: only in the {'cpu' if k in a else 'device'} run")
    for k in sorted(set(a) & set(b)):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        w = f"{where}:{k}" if k else where
        if x.shape != y.shape:
            st.fail(f"{w}: shape {x.shape} vs {y.shape}")
            continue
        if x.dtype.kind in "biuf" and y.dtype.kind in "biuf" and x.dtype.kind != "b":
            if x.dtype.kind in "iu" and y.dtype.kind in "iu":
                d = np.abs(x.astype(np.int64) - y.astype(np.int64))
                n = int(d.size)
                if ctx.is_count(k):
                    st.counts += n
                    st.max_count = max(st.max_count, float(d.max()) if n else 0.0)
                    if n and d.max() > ctx.policy.count_abs:
                        st.fail(f"{w}: counts differ by up to {int(d.max())} (> {ctx.policy.count_abs:g})")
                    continue
                st.numbers += n
                st.max_abs = max(st.max_abs, float(d.max()) if n else 0.0)
                if n and d.max() > 0:
                    st.fail(f"{w}: {int((d > 0).sum())} of {n} integers differ")
                continue
            xf, yf = x.astype(np.float64), y.astype(np.float64)
            tol = ctx.tol(k)
            both_nan = np.isnan(xf) & np.isnan(yf)
            same_inf = np.isinf(xf) & (xf == yf)
            with np.errstate(invalid="ignore"):
                d = np.where(both_nan | same_inf, 0.0, np.abs(xf - yf))
                scale = np.maximum(np.abs(xf), np.abs(yf))
                bad = ~(d <= tol.abs + tol.rel * np.where(same_inf, 0.0, scale))
            st.numbers += int(d.size)
            if d.size:
                st.max_abs = max(st.max_abs, float(np.nanmax(d)) if not np.isnan(d).all() else math.inf)
                big = (scale >= REL_FLOOR) & np.isfinite(scale)
                if big.any():
                    st.max_rel = max(st.max_rel, float((d[big] / scale[big]).max()))
            if bad.any():
                i = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(d, nan=np.inf), -1))), d.shape)
                st.fail(f"{w}: {int(bad.sum())} of {d.size} values outside {tol} (worst at {tuple(int(j) for j in i)}: "
                        f"{xf[i]!r} vs {yf[i]!r})")
        else:
            st.strings += int(x.size)
            if x.dtype.kind != y.dtype.kind or not np.array_equal(x, y):
                st.fail(f"{w}: {x.dtype} values differ")


def compare_csv(pa: Path, pb: Path, ctx: Ctx, st: Stats, where: str) -> None:
    ra = list(csv.reader(pa.open(newline="", encoding="utf-8")))
    rb = list(csv.reader(pb.open(newline="", encoding="utf-8")))
    if not ra or not rb or ra[0] != rb[0]:
        st.fail(f"{where}: header {ra[:1]} vs {rb[:1]}")
        return
    if len(ra) != len(rb):
        st.fail(f"{where}: {len(ra) - 1} vs {len(rb) - 1} rows")
        return
    header = ra[0]
    for r, (x, y) in enumerate(zip(ra[1:], rb[1:]), start=1):
        if len(x) != len(y):
            st.fail(f"{where}: row {r} has {len(x)} vs {len(y)} cells")
            continue
        for col, u, v in zip(header, x, y):
            w = f"{where}[{r}].{col}"
            if ctx.skip(col):
                continue
            nu, nv = _parse_number(u), _parse_number(v)
            if nu is not None and nv is not None:
                compare_numbers(nu, nv, w, col, ctx, st)
            else:
                compare_strings(u, v, w, col, ctx, st)


def _parse_number(s: str) -> int | float | None:
    s = s.strip()
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    try:
        return float(s) if s.lower() not in ("", "true", "false") else None
    except ValueError:
        return None


def compare_text(pa: Path, pb: Path, ctx: Ctx, st: Stats, where: str) -> None:
    la = pa.read_text(encoding="utf-8", errors="replace").splitlines()
    lb = pb.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(la) != len(lb):
        st.fail(f"{where}: {len(la)} vs {len(lb)} lines")
        return
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        compare_strings(x, y, f"{where}:{i}", None, ctx, st)


def compare_files(pa: Path, pb: Path, rel: str, policy: Policy, roots: tuple[str, ...] = ()) -> Stats:
    """Compare one file of the cpu run (``pa``) with the same file of the device run (``pb``)."""
    st = Stats()
    ctx = Ctx(policy, rel, roots)
    suffix = pa.suffix.lower()
    try:
        if suffix in (".json", ".jsonl"):
            load = _load_jsonl if suffix == ".jsonl" else (lambda p: json.loads(p.read_text(encoding="utf-8")))
            compare_values(policy.prepared(rel, load(pa)), policy.prepared(rel, load(pb)), ctx, st, rel)
        elif suffix in (".npz", ".npy", ".safetensors"):
            compare_arrays(_arrays(pa), _arrays(pb), ctx, st, rel)
        elif suffix in (".csv", ".tsv"):
            compare_csv(pa, pb, ctx, st, rel)
        else:
            try:
                compare_text(pa, pb, ctx, st, rel)
            except UnicodeDecodeError:
                if pa.read_bytes() != pb.read_bytes():
                    st.fail(f"{rel}: binary files differ")
    except Exception as err:  # a file that cannot be read is a failure of the check, not a crash
        st.fail(f"{rel}: cannot compare ({type(err).__name__}: {err})")
    return st


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def compare_trees(root_a: Path, root_b: Path, policy: Policy) -> dict:
    """Walk both roots; every file present in one only fails; returns totals, per-file stats and skipped files."""
    root_a, root_b = Path(root_a), Path(root_b)
    fa, fb = _files(root_a), _files(root_b)
    total, files, skipped = Stats(), {}, {}
    for rel in sorted(fa ^ fb):
        total.fail(f"{rel}: only in the {'cpu' if rel in fa else 'device'} run")
    roots = (str(root_a.resolve()), str(root_b.resolve()), str(root_a), str(root_b))
    for rel in sorted(fa & fb):
        why = policy.skip_reason(rel)
        if why:
            skipped[rel] = why
            continue
        st = compare_files(root_a / rel, root_b / rel, rel, policy, roots)
        files[rel] = st.as_dict()
        total.merge(st)
    if not fa and not fb:
        total.fail("no files written")
    return {"ok": total.ok, "files_compared": len(files), **total.as_dict(), "files": files, "skipped": skipped}


# --------------------------------------------------------------------------------------------------------------
# commands


def _interpret_features(obj: Any) -> Any:
    """features.json: the direction features (from activation means; deterministic), not the crosscoder's latents
    (trained: another float order on the device trains other latents). Ids are ranks among both kinds: dropped."""
    feats = [{k: v for k, v in f.items() if k != "id"} for f in obj.get("features", []) if f.get("kind") == "direction"]
    return {**{k: v for k, v in obj.items() if k != "features"}, "features": feats}


def _interpret_summary(obj: Any) -> Any:
    head = dict(obj.get("headline", {}))
    head["top_features"] = [{k: v for k, v in f.items() if k != "id"} for f in head.get("top_features", [])
                            if f.get("kind") == "direction"]
    for k in ("causal_features", "specific_features", "closing_features", "features"):
        head.pop(k, None)  # counts over directions and latents
    return {**{k: v for k, v in obj.items() if k not in ("lines", "headline")}, "headline": head}


CROSSCODER_KEPT = ("layer", "library", "input", "rms", "latents", "k", "steps", "batch", "lr", "norm_penalty",
                   "auxk_alpha", "vectors", "view_rows", "final_loss", "explained_variance")


def _interpret_crosscoder(obj: Any) -> Any:
    return {k: obj[k] for k in CROSSCODER_KEPT if k in obj}


@dataclass(frozen=True)
class Spec:
    """One command of the check: its CLI invocations (full / --quick), organisms and comparison policy."""

    runs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (full args, quick args) per invocation
    organisms: tuple[str, ...]
    policy: Policy


SAMPLES = ("--max-samples", "48")
QUICK = ("--max-samples", "6", "--max-tokens", "32")
TRAINED = Tol(0.0, 0.02)

COMMANDS: dict[str, Spec] = {
    "mine": Spec(
        runs=((("mine", *SAMPLES, "--top-k", "20", "--likelihood-ratios", "--no-plots"),
               ("mine", *QUICK, "--top-k", "20", "--orderings", "top-k-occurring,fraction-positive-diff,nmf",
                "--nmf-max-iter", "20", "--no-plots")),),
        organisms=("cake",),
        policy=Policy(
            tol=Tol(1e-4, 3e-4), count_abs=5,
            rules=(Rule("top_k_occurring/*", "ordering_value", Tol(0.0, 1.0),
                        "percent of positions with the token in the top K: 100 x count / positions"),
                   Rule("fraction_positive_diff/*", "ordering_value", Tol(0.0, 0.01), "a fraction of positions"),
                   Rule("nmf_*", "*", Tol(1e-3, 1e-3), "NMF of the top-K membership matrix, 100 multiplicative "
                        "updates on the device from one CPU-seeded start"),
                   Rule("summary.json", "top_promoted_values", Tol(0.0, 1.0), "top-k-occurring percentages"),
                   Rule("summary.json", "lines", Tol(0.0, 1.0), "the headline line prints those percentages")),
            why="logit diffs in float32, accumulated in float32 (measured earlier on an H200: 3e-5); top-K "
                "counts move on near ties (measured: <= 3)")),
    "lens": Spec(
        runs=((("lens", *SAMPLES), ("lens", *QUICK)),),
        organisms=("cake",),
        policy=Policy(tol=Tol(1e-4, 2e-5), why="float32 logit-lens KL / agreement (measured earlier: 2e-6)")),
    "nll": Spec(
        runs=((("nll", *SAMPLES), ("nll", *QUICK)),),
        organisms=("cake",),
        policy=Policy(tol=Tol(1e-4, 1e-3), why="float32 per-layer NLL (measured earlier: 1e-4)")),
    "routing": Spec(
        runs=((("routing", "--sweep", "1,2", "--max-samples", "48", "--bootstrap", "50", "--batch-size", "48"),
               ("routing", "--sweep", "1", "--max-samples", "8", "--max-tokens", "32", "--bootstrap", "20")),),
        organisms=("moe",),
        policy=Policy(tol=Tol(1e-4, 5e-5), count_abs=0,
                      why="router softmax / top-k usage in float32 (measured earlier with --sweep: 5e-6); "
                          "expert choices exact")),
    "tokenlens": Spec(
        runs=((("tokenlens", "attribute"), ("tokenlens", "attribute", "--max-new-tokens", "4")),
              (("tokenlens", "attribute", "--method", "integrated_gradients", "--ig-steps", "16"),
               ("tokenlens", "attribute", "--method", "integrated_gradients", "--ig-steps", "4",
                "--max-new-tokens", "4"))),
        organisms=("cake",),
        policy=Policy(tol=Tol(1e-3, 3e-4), why="gradients of the generated tokens' probability, float32 "
                      "(measured earlier: 3e-5); the greedy continuation must be the same tokens")),
    "interpret": Spec(
        runs=((("interpret", "--features", "3", "--causal-samples", "12", "--steps", "150", "--latents", "256",
                "--max-vectors", "4000", "--crosscoder-batch", "256", "--random-directions", "32"),
               ("interpret", "--features", "2", "--causal-samples", "4", "--steps", "20", "--latents", "64",
                "--max-vectors", "500", "--crosscoder-batch", "128", "--random-directions", "32")),),
        organisms=("cake",),
        policy=Policy(
            tol=Tol(1e-3, 1e-3),
            rules=(Rule("crosscoder_layer*.json", "final_loss", Tol(0.05, 0.0), "trained"),
                   Rule("crosscoder_layer*.json", "explained_variance", TRAINED, "trained"),
                   Rule("summary.json", "crosscoder_explained_variance", TRAINED, "trained")),
            skip_files=(("crosscoder_layer*.npz", "the trained crosscoder's weights and latent statistics: "
                         "training on another device takes another float path; compared through its "
                         "final loss and explained variance"),
                        ("feature_vectors.npz", "mixes crosscoder latents with the directions (the directions "
                         "are compared in activation_stats.npz and features.json)"),
                        ("report.md", "names and ranks crosscoder latents (directions: features.json)")),
            prepare=(("features.json", _interpret_features), ("summary.json", _interpret_summary),
                     ("crosscoder_layer*.json", _interpret_crosscoder)),
            why="activation means, category cosines, token relevance and the direction features' causal checks "
                "(z against seeded CPU random directions) at 1e-3; the crosscoder (trained) by final loss (5% rel) "
                "and explained variance (abs 0.02)")),
    "attribute": Spec(
        runs=((("attribute",), ("attribute", "--method", "delta-h,grad,bm25", "--max-tokens", "32")),),
        organisms=("hops",),
        policy=Policy(
            tol=Tol(1e-4, 1e-4),
            rules=(Rule("metrics.*", "*", Tol(0.0, 0.05), "ranking metrics: one near-tie swap across a cut-off "
                        "moves a mean over 40 queries by 1/40"),
                   Rule("summary.json", "*", Tol(0.0, 0.05), "the headline repeats metrics")),
            why="cosine / gradient scores and cached vectors at 1e-4; ranking metrics (discontinuous in the "
                "scores) at abs 0.05")),
}


def _python() -> str:
    return sys.executable or "python3"


def run_cli(args: list[str], device: str, out: Path, log: Path, env: dict) -> dict:
    cmd = [_python(), "-m", "modeldiff_cli", *args, "--device", device, "--out", str(out)]
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    last = ""
    if proc.returncode:
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
    return {"args": args, "device": device, "rc": proc.returncode, "seconds": round(seconds, 2), "error": last}


def check_command(name: str, device: str, out: Path, quick: bool, env: dict) -> dict:
    spec = COMMANDS[name]
    ref, dut = out / "runs" / "reference-cpu" / name, out / "runs" / f"test-{device.replace(':', '-')}" / name
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs = []
    for full, small in spec.runs:
        args = list(small if quick else full)
        for side, dev, root in (("reference", "cpu", ref), ("test", device, dut)):
            runs.append({"side": side, **run_cli(args, dev, root, logs / f"{name}-{side}.log", env)})
    failed = [r for r in runs if r["rc"]]
    if failed:
        res = {"ok": False, "files_compared": 0, "numbers": 0, "counts": 0, "max_abs": None, "max_rel": None,
               "max_count": None, "failures": len(failed),
               "failure_examples": [f"{r['side']} run ({r['device']}) of {' '.join(r['args'])}: exit {r['rc']}: {r['error']}"
                                    for r in failed], "notes": [], "files": {}, "skipped": {}}
    else:
        res = compare_trees(ref, dut, spec.policy)
    pol = spec.policy
    return {"command": name, **res, "runs": runs, "tolerance": str(pol.tol), "count_tolerance": pol.count_abs,
            "why": pol.why, "rules": [{"files": r.files, "key": r.key, "tol": str(r.tol), "why": r.why}
                                      for r in pol.rules],
            "skipped_by_policy": [{"files": g, "why": w} for g, w in pol.skip_files]}


def _fmt(x: float | None) -> str:
    return "-" if x is None else ("0" if x == 0 else f"{x:.2g}")


def table(results: list[dict]) -> str:
    head = ["command", "files", "numbers", "max abs", "max rel", "max count", "tolerance", "notes", "result"]
    rows = [[r["command"], str(r["files_compared"]), str(r["numbers"] + r["counts"]), _fmt(r["max_abs"]),
             _fmt(r["max_rel"]), _fmt(r["max_count"]),
             r["tolerance"] + (f", counts {r['count_tolerance']:g}" if r["count_tolerance"] else ""),
             str(len(r["notes"])), "PASS" if r["ok"] else "FAIL"] for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def build_organisms(names: set[str], env: dict) -> dict:
    times = {}
    for org in sorted(names):
        t0 = time.perf_counter()
        proc = subprocess.run([_python(), "-m", "modeldiff_cli", "organism", "build", org], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        times[org] = round(time.perf_counter() - t0, 2)
        if proc.returncode:
            print(f"organism {org}: build failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}",
                  file=sys.stderr)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="the device under test (cpu: a dry run, cpu vs cpu)")
    ap.add_argument("--out", default="runs/device_parity", help="where the runs, logs and the report go")
    ap.add_argument("--commands", default=",".join(COMMANDS), help="comma list of " + ", ".join(COMMANDS))
    ap.add_argument("--quick", action="store_true", help="the smallest settings (a few seconds of model work each)")
    ap.add_argument("--jobs", type=int, default=1, help="commands checked at once (each its own subprocesses)")
    ns = ap.parse_args(argv)
    names = [c.strip() for c in ns.commands.split(",") if c.strip()]
    unknown = [c for c in names if c not in COMMANDS]
    if unknown or not names:
        print(f"error: --commands {ns.commands!r}: unknown {', '.join(unknown) or '(empty)'}; "
              f"valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if ns.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    device = ns.device
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        print(f"error: --device {device!r}: expected cpu, cuda, cuda:N or mps", file=sys.stderr)
        return 2
    out = Path(ns.out)
    if (out / "runs").exists():
        import shutil

        shutil.rmtree(out / "runs")
        shutil.rmtree(out / "logs", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("MODELDIFF_DEBUG", "1")  # a failing run leaves its traceback in the log
    if ns.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // ns.jobs))
    t0 = time.perf_counter()
    built = build_organisms({o for c in names for o in COMMANDS[c].organisms}, env)
    done: dict[str, dict] = {}
    lock = threading.Lock()

    def write_report(final: bool) -> dict:
        results = [done[c] for c in names if c in done]
        report = {"device": device, "quick": ns.quick, "jobs": ns.jobs, "organism_build_seconds": built,
                  "seconds": round(time.perf_counter() - t0, 1), "python": sys.version.split()[0],
                  "complete": final, "pending": [c for c in names if c not in done],
                  "ok": final and all(r["ok"] for r in results), "commands": results}
        tmp = out / "device_parity.json.tmp"
        tmp.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        tmp.replace(out / "device_parity.json")
        return report

    def one(c: str) -> None:
        res = check_command(c, device, out, ns.quick, env)
        with lock:  # the report is rewritten after each command: a run stopped by a time box keeps what finished
            done[c] = res
            write_report(False)
            print(f"  {c}: {'PASS' if res['ok'] else 'FAIL'} ({time.perf_counter() - t0:.0f} s)", flush=True)

    with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
        list(pool.map(one, names))
    report = write_report(True)
    results = report["commands"]
    print(f"device parity: cpu vs {device}{' (--quick)' if ns.quick else ''}, {report['seconds']} s")
    print(table(results))
    for r in results:
        for msg in r["failure_examples"][:5]:
            print(f"  FAIL {r['command']}: {msg}")
        for msg in r["notes"][:3]:
            print(f"  note {r['command']}: {msg}")
    print(f"report: {out / 'device_parity.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
