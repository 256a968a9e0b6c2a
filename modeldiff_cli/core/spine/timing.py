"""Where a run's time and memory went: named stages, recorded into ``run_metadata.json``.

``with stage("load models"):`` times one step of the running command. Stages nest: an inner stage is recorded
with its parent (``"order/nmf"``) and counts toward the parent's time, not twice toward the run's. Outside a
run (a library call, a test) a stage is a no-op, so pure functions may be wrapped freely.

The spine (``core.spine.command.launch``) opens one :class:`Profile` per run, records the start-up before it
(interpreter, imports and option parsing, measured from the process's start time) and the time it spends
itself (resolving and fingerprinting inputs, writing the summary), and stores :meth:`Profile.as_dict` as the
``timings`` field of ``run_metadata.json``: seconds per stage, the process wall time, the fraction the stages
cover, the peak resident memory of the process and, on CUDA, the peak memory allocated on each device.
``--profile`` prints the same table on stderr at the end of the run.

Timing a CUDA stage synchronises the devices at its end (only when CUDA is initialised), so asynchronous
kernels are charged to the stage that launched them, not to the next one that happens to wait for them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_IMPORTED_AT = time.time()  # fallback process start: when this module was first imported
_origin: list[float] = []  # set by the command line's entry point: the next run is timed from the process start


def process_start() -> float:
    """The process's start time (epoch seconds): from the OS where it says, else this module's import time."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil missing or refused: the import time is a close lower bound
        return _IMPORTED_AT


def started_by_cli() -> None:
    """Called by the ``modeldiff`` entry point: the run this process makes is timed from the process's start,
    so its start-up (interpreter, imports, option parsing) is a stage. A run started from Python (tests, a
    notebook) is timed from its own start instead."""
    _origin[:] = [process_start()]


def run_origin() -> float:
    """Where a new run's wall clock starts: the process start for the command line's first run, else now."""
    return _origin.pop() if _origin else time.time()


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def _cuda_ready():
    """``torch.cuda`` when torch is imported and CUDA initialised; never imports torch or initialises CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_initialized() else None
    except Exception:  # noqa: BLE001 - a broken CUDA install must not break a run's bookkeeping
        return None


def cuda_peaks_mb() -> dict[str, float]:
    """Peak memory allocated by torch on each CUDA device, MiB (empty without CUDA)."""
    cuda = _cuda_ready()
    if cuda is None:
        return {}
    return {f"cuda:{i}": round(cuda.max_memory_allocated(i) / (1 << 20), 1) for i in range(cuda.device_count())}


def _sync() -> None:
    cuda = _cuda_ready()
    if cuda is not None:
        for i in range(cuda.device_count()):
            cuda.synchronize(i)


@dataclass
class Profile:
    """The stages of one run; ``started`` is when the process started. A stage entered again (a writer called
    once per file) adds to its entry: seconds summed, ``calls`` counted."""

    started: float = field(default_factory=run_origin)
    entries: dict[str, dict] = field(default_factory=dict)  # "a/b" -> {"seconds": s, "calls": n, "depth": d}
    _open: list[str] = field(default_factory=list)

    def add(self, name: str, seconds: float) -> None:
        """Record ``seconds`` of the stage ``name`` inside the stages now open."""
        entry = self._entry("/".join([*self._open, name]))
        entry["seconds"] += seconds
        entry["calls"] += 1

    def _entry(self, path: str) -> dict:
        return self.entries.setdefault(path, {"seconds": 0.0, "calls": 0, "depth": path.count("/")})

    def as_dict(self, now: float | None = None) -> dict:
        wall = (now if now is not None else time.time()) - self.started
        top = sum(e["seconds"] for e in self.entries.values() if e["depth"] == 0)
        return {
            "wall_s": round(wall, 3),
            "covered": round(min(top / wall, 1.0), 4) if wall > 0 else 1.0,
            "stages": [{"stage": path, "seconds": round(e["seconds"], 4), "calls": e["calls"], "depth": e["depth"]}
                       for path, e in self.entries.items()],
            "peak_rss_mb": peak_rss_mb(),
            "cuda_max_allocated_mb": cuda_peaks_mb(),
        }


_active: Profile | None = None


def active() -> Profile | None:
    return _active


@contextmanager
def profiling(profile: Profile | None = None) -> Iterator[Profile]:
    """Make ``profile`` (a new one by default) the one stages record into, for the duration of a run."""
    global _active
    previous, _active = _active, profile if profile is not None else Profile()
    try:
        yield _active
    finally:
        _active = previous


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed step as a stage of the running command (a no-op outside a run)."""
    profile = _active
    if profile is None:
        yield
        return
    entry = profile._entry("/".join([*profile._open, name]))  # listed before the stages inside it
    entry["calls"] += 1
    profile._open.append(name)
    begin = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        entry["seconds"] += time.perf_counter() - begin
        profile._open.pop()


def table(timings: dict) -> list[str]:
    """The stage table as printed by ``--profile``: one line per stage (inner ones indented), then the totals."""
    wall = timings.get("wall_s") or 0.0
    lines = [f"{'stage':<40} {'seconds':>9} {'share':>7}"]
    for s in timings.get("stages", []):
        name = "  " * s["depth"] + s["stage"].rsplit("/", 1)[-1]
        share = f"{100 * s['seconds'] / wall:6.1f}%" if wall else ""
        lines.append(f"{name:<40} {s['seconds']:>9.3f} {share:>7}")
    covered = timings.get("covered", 0.0)
    lines.append(f"{'(not in a stage)':<40} {wall * (1 - covered):>9.3f} {100 * (1 - covered):6.1f}%")
    lines.append(f"{'wall time':<40} {wall:>9.3f} {100 * covered:6.1f}% in stages")
    memory = [f"peak RSS {timings['peak_rss_mb']:.0f} MiB"] if timings.get("peak_rss_mb") is not None else []
    memory += [f"{dev} max allocated {mb:.0f} MiB" for dev, mb in timings.get("cuda_max_allocated_mb", {}).items()]
    if memory:
        lines.append("; ".join(memory))
    return lines
