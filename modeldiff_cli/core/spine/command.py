"""The command spine: a command is a frozen dataclass of ingredients plus its own options, and ``execute()``.

:func:`launch` runs every command the same way:

1. the run configuration is derived from the dataclass (options marked ``result``) plus the fingerprints of its
   models and data — computed from files, before any model loads;
2. the run directory is ``{out}/{command}/{base}_vs_{ft}/{name}-{hash}`` (one model: ``{out}/{command}/{model}/...``);
   a complete run with the same configuration is reused (its headline printed from its ``summary.json``),
   a different one is refused unless ``--overwrite``;
3. ``execute(run)`` writes its artifacts into the partial directory and returns a :class:`Result`;
4. ``summary.json`` (command, configuration, headline figures, every artifact with its kind and description) is
   written, the directory moved into place, the headline printed, and the run directory printed last.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError
from . import console
from .declared import Artifact, describe, help_text
from .ingredients import RunOpts, checkpoint_every_option
from .rundir import Run, code_digest, config_hash, prepare_run, run_directory, slug
from .spec import Param, command_params, typer_callback

SUMMARY = "summary.json"

# artifact kinds by file suffix (a command may name another kind with Run.describe)
KINDS = {
    ".csv": "table", ".tsv": "table", ".md": "text", ".txt": "text", ".png": "plot", ".svg": "plot",
    ".npz": "matrix", ".npy": "matrix", ".safetensors": "matrix", ".html": "html", ".json": "payload",
    ".jsonl": "payload",
}


@dataclass
class Result:
    """What ``execute`` returns: headline figures (a small JSON-able dict) and the lines printed for them."""

    headline: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # extra facts for summary.json (e.g. shared vocabulary)
    # what makes the result doubtful (e.g. two identical models): summary.json's top-level ``warnings``, one
    # ``warning:`` line each on stderr (also when the run is reused), and the report's warnings column
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fingerprints:
    """What the run is about, known before any model loads."""

    labels: tuple[str, ...]  # model labels for the run directory (one or two)
    names: tuple[str, ...]  # data names for the run directory's leaf
    values: dict  # fingerprints of models and data, for the configuration


@dataclass(frozen=True)
class Command:
    """Base of every command dataclass. Subclasses set ``name`` and implement ``fingerprints`` and ``execute``.

    Every command has the run's options (:class:`core.spine.ingredients.RunOpts`: ``--out``, ``--seed``,
    ``--overwrite``, ``--profile``); a ``resumable`` one also ``--checkpoint-every`` (``core.spine.checkpoint``)."""

    name: ClassVar[str]
    panel: ClassVar[str | None] = None
    resumable: ClassVar[bool] = False  # has --checkpoint-every: its long loop saves and resumes
    modes: ClassVar[tuple[str, ...]] = ("pair",)  # what it compares (core.spine.compared), the first its default
    # per-command default overrides {option: (default, why)} and extra flag names {option: ("--old",)}
    defaults: ClassVar[dict[str, tuple[Any, str]]] = {}
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    old_flags: ClassVar[dict[str, tuple[str, ...]]] = {}  # hidden old spellings, kept for one release
    # default-organism policy: the organism used when no model is given, and what it fills in:
    # {option: "base" | "ft" (its checkpoint) | ("key", ...) (its data files) | "key" (one data file)}
    organism: ClassVar[str | None] = "cake"
    organism_fill: ClassVar[dict[str, Any]] = {}
    organism_settings: ClassVar[dict[str, Any]] = {}  # option values when the organism's data is used
    # the files it writes, declared once (its artifacts.py): summary.json's descriptions, --help, writer, report
    artifacts: ClassVar[tuple[Artifact, ...]] = ()

    run: RunOpts = field(default_factory=RunOpts)
    checkpoint_every: int = checkpoint_every_option()

    @classmethod
    def help(cls) -> str:
        """``--help``'s description: the docstring, then the files the command writes (its declarations)."""
        text = inspect.cleandoc(cls.__doc__ or "")
        return f"{text}\n\n{help_text(cls.artifacts)}" if cls.artifacts else text

    def described(self) -> tuple[Artifact, ...]:
        """The declarations as this run describes its files in summary.json (a command whose descriptions name
        the run's own labels words them here; routing does)."""
        return self.artifacts

    # ---- to implement -------------------------------------------------------------------------------------
    def fingerprints(self) -> Fingerprints:  # pragma: no cover - abstract
        raise NotImplementedError

    def execute(self, run: Run) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def preflight(self) -> None:
        """Checks that need more than the option values (each ingredient's ``preflight()``, e.g. ``Data``'s: its
        first records read), for a run that computes, before ``execute`` loads any model. A command whose reading
        of the data differs from its ingredient's overrides this."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = getattr(getattr(self, f.name), "preflight", None)
            if callable(check):
                check()

    def run_name(self) -> str:
        """The leaf's readable part: the data names (and whatever tells runs of one command apart)."""
        return "+".join(self.fp.names) or self.name

    @cached_property
    def fp(self) -> Fingerprints:
        """``fingerprints()``, computed once per command instance."""
        return self.fingerprints()

    # ---- shared behaviour ---------------------------------------------------------------------------------
    @classmethod
    def make(cls, **values):
        """The command as the CLI would build it from these option values (defaults, organism policy, checks)."""
        from .spec import build

        return build(cls, command_params(cls), values)

    @classmethod
    def fill_defaults(cls, flat: dict, params: list[Param]) -> dict:
        """One policy for every command, derived from the modes it accepts (``core.spine.compared.resolve``): the mode
        of the run, the options that do not go together, and the organism's defaults when no model is given."""
        from .compared import resolve

        return resolve(cls, flat, params)

    def settings(self) -> dict:
        """The options that decide what is computed, flattened (ingredients inlined)."""
        return _settings(self)

    def config(self) -> dict:
        return {"command": self.name, "settings": self.settings(), "fingerprints": self.fp.values}

    def parts(self, config: dict) -> list[str]:
        fp = self.fp
        models = "_vs_".join(slug(label) for label in dict.fromkeys(fp.labels))
        return [self.name, models or "none", f"{slug(self.run_name())}-{config_hash(config)}"]

    def draws_figures(self) -> bool:
        """Whether this run writes plots (``core.spine.plot_queue`` starts its workers for those that do)."""
        return bool(getattr(self, "plots", False))


def _settings(obj) -> dict:
    """The command's options marked ``result``, by name (ingredients inlined; options of modes it does not
    accept are not its options)."""
    out: dict = {}
    for p in command_params(type(obj)):
        if p.opt.result:
            value = obj
            for step in p.path:
                value = getattr(value, step)
            out[p.name] = list(value) if isinstance(value, tuple) else value
    return out


def launch(cmd: Command) -> Path:
    """Run a command through the spine (see the module docstring); returns the run directory.

    Under a launcher (``WORLD_SIZE`` > 1, see ``core.spine.distributed``) rank 0 alone prepares, writes and prints the
    run directory; every rank runs ``execute`` on its shard. ``--checkpoint-every`` (a command's
    ``checkpoint_every`` option) makes the partial directory resumable (``core.spine.checkpoint``). Where the time
    went (``core.spine.timing``) is recorded in run_metadata.json and, with ``--profile``, printed at the end."""
    from . import timing

    profile = timing.Profile()
    started = time.time()
    if started - profile.started > 0:
        profile.add("start-up (interpreter, imports, options)", started - profile.started)
    with timing.profiling(profile):
        where: list[Run] = []  # the run being written, for the message of an interruption
        try:
            path, timings = _launch(cmd, profile, where)
        except KeyboardInterrupt:
            raise Interrupted(interrupted_message(where[0] if where else None)) from None
    if getattr(cmd.run, "profile", False) and timings:  # type: ignore[attr-defined]
        for line in timing.table(timings):
            console.info(line)
    return path


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; its text says what was kept and how to go on (the CLI prints it, exit 130)."""


def interrupted_message(run: Run | None) -> str:
    """What an interruption left: a resumable run's partial directory (re-run to resume), or nothing."""
    from . import checkpoint

    if run is None or run.reused or not run.resumable or not Path(run.work).is_dir():
        return "nothing was written (a run is written only when it completes)"
    saved = sorted(p.name for p in (Path(run.work) / checkpoint.FOLDER).glob("*.pt"))
    kept = f"with its checkpoint ({', '.join(saved)})" if saved else "(no checkpoint was saved yet)"
    return (f"the partial run directory {run.work} is kept {kept}; re-run the same command to resume"
            + ("" if saved else " (it starts from the first batch)"))


def _launch(cmd: Command, profile, where: list | None = None) -> tuple[Path, dict | None]:
    from . import checkpoint, distributed, plot_queue
    from .timing import stage

    with stage("resolve and fingerprint inputs"):
        config = cmd.config()
    run_opts = cmd.run  # type: ignore[attr-defined]
    resumable = bool(getattr(cmd, "checkpoint_every", 0))
    distributed.init()
    if distributed.active() and not distributed.is_main():
        return _launch_worker(cmd, config), None
    prepared = None
    if distributed.active():  # rank 0 decides (reuse, refusal) for every rank
        box: list[Run] = []

        def _prepare() -> tuple[bool, str]:
            box.append(prepare_run(run_opts.out, cmd.parts(config), config, run_opts.overwrite, resumable))
            return box[0].reused, str(box[0].work)

        distributed.agree(_prepare)
        prepared = box[0]
    timings = None
    with run_directory(run_opts.out, cmd.parts(config), config, command=cmd.name, overwrite=run_opts.overwrite,
                       resumable=resumable, prepared=prepared) as run:
        if where is not None:
            where.append(run)
        if run.reused:
            summary = read_summary(run.path)
            console.info(f"reusing the complete run in {run.path} (pass --overwrite to recompute)")
            if run.other_code:
                console.info(f"warning: {run.path} was made by other modeldiff code (code digest {run.other_code}, "
                             f"this one {code_digest()}): its results may differ; --overwrite recomputes it")
            timings = _stored_timings(run.path)
        else:
            cmd.preflight()  # the data's first records, before torch, transformers and any model load
            # every command that computes uses both: charged here, not to whichever stage touches them first
            with stage("import torch"):
                import torch  # noqa: F401
            with stage("import transformers"):
                import transformers

                transformers.AutoConfig, transformers.AutoModelForCausalLM  # noqa: B018 - resolve the lazy imports
            if getattr(run_opts, "seed", None) is not None:
                _seed(run_opts.seed)
            checkpoint.activate(run.work if resumable else None)
            describe(run, cmd.described())
            try:
                # figures go to worker processes where the machine has cores to spare (core.spine.plot_queue);
                # every one of them is written when this block ends
                with plot_queue.plotting(None if cmd.draws_figures() else 0):
                    result = cmd.execute(run)
            finally:
                checkpoint.activate(None)
            if resumable:
                shutil.rmtree(run.work / checkpoint.FOLDER, ignore_errors=True)
            run.metadata.update(distributed.run_facts())
            with stage("write summary"):
                summary = write_summary(run, cmd.name, config, result)
            timings = run.metadata["timings"] = profile.as_dict()
    for line in summary.get("lines", []):
        console.result(line)
    for warning in summary.get("warnings") or []:
        warn(warning)
    console.done(run.path)
    return run.path, timings


def _stored_timings(path: Path) -> dict | None:
    """A reused run's own stage table (from its run_metadata.json), for ``--profile``."""
    from .artifacts import read_json
    from .rundir import METADATA

    try:
        return read_json(Path(path) / METADATA).get("timings")
    except (OSError, ValueError):
        return None


def _launch_worker(cmd: Command, config: dict) -> Path:
    """A non-zero rank: rank 0's decision (reuse / refusal / its partial directory), then this rank's shard.
    Its ``work`` is a private scratch directory (a command that does not shard writes there, thrown away)."""
    import tempfile

    from . import checkpoint, distributed

    run_opts = cmd.run  # type: ignore[attr-defined]
    reused, shared = distributed.agree(lambda: None)
    final = Path(run_opts.out).expanduser().joinpath(*cmd.parts(config))
    if reused:
        return final
    scratch = Path(tempfile.mkdtemp(prefix=f"modeldiff-rank{distributed.rank()}-"))
    run = Run(path=final, work=scratch, config=config, shared=Path(shared),
              resumable=bool(getattr(cmd, "checkpoint_every", 0)))
    try:
        if getattr(run_opts, "seed", None) is not None:
            _seed(run_opts.seed)
        cmd.preflight()  # every rank checks the same inputs: a bad one fails every rank alike
        checkpoint.activate(run.shared if run.resumable else None)
        cmd.execute(run)
    except distributed.WorkerDone:
        pass
    finally:
        checkpoint.activate(None)
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _seed(seed: int) -> None:
    import random

    random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def write_summary(run: Run, command: str, config: dict, result: Result) -> dict:
    from .artifacts import write_json

    summary = {
        "command": command,
        "config": config,
        "headline": result.headline,
        "lines": result.lines,
        "artifacts": list_artifacts(run),
        "warnings": [str(w) for w in result.warnings],
        **({"metadata": result.metadata} if result.metadata else {}),
    }
    write_json(run.work / SUMMARY, summary)
    return summary


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, never wrapped (a non-zero rank of a data-parallel run prints nothing)."""
    import sys

    if not console.quiet():
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def list_artifacts(run: Run) -> list[dict]:
    """Every file in the run directory (but its metadata), with a kind and the description the command gave."""
    from .rundir import METADATA

    rows = []
    for path in sorted(p for p in run.work.rglob("*") if p.is_file()):
        rel = path.relative_to(run.work).as_posix()
        if rel in (METADATA, SUMMARY) or path.name.startswith("."):
            continue
        kind, description = run.description_of(rel)
        rows.append({"path": rel, "kind": kind or KINDS.get(path.suffix, "file"), "description": description,
                     "bytes": path.stat().st_size})
    return rows


def read_summary(path: Path) -> dict:
    from .artifacts import read_json

    file = Path(path) / SUMMARY
    if not file.is_file():
        raise UserError(f"{path}: complete run without {SUMMARY} (written by an older modeldiff); pass --overwrite")
    return read_json(file)


def register(app, cls, *, name: str | None = None, run=None, group: str | None = None, argument=None):
    """The one way a command joins the CLI: ``cls`` (its options from its declaration, its help from
    :meth:`Command.help`) under ``name`` (default ``cls.name``), running ``run`` (default :func:`launch`).

    ``group``: the command is also a group (its help text; sub-commands are registered on the returned Typer app,
    e.g. ``mine overview``). ``argument``: ``(name, type, help, metavar)`` of one positional argument first
    (``report PATH...``); ``run`` then takes ``(argument, options)``. ``cls`` None with ``group``: a group
    without a command of its own (``tokenlens``)."""
    import typer

    from .spec import with_argument

    name = name or cls.name
    run = run or launch
    if group is not None:
        if cls is not None and getattr(cls, "artifacts", ()):
            group = f"{group}\n\n{help_text(cls.artifacts)}"
        sub = typer.Typer(name=name, help=group, add_completion=False, invoke_without_command=cls is not None,
                          no_args_is_help=cls is None, context_settings={"help_option_names": ["-h", "--help"]})
        if cls is not None:
            sub.callback(invoke_without_command=True)(typer_callback(cls, run, context=True))
        app.add_typer(sub, name=name)
        return sub
    doc = cls.help() if hasattr(cls, "help") else inspect.cleandoc(cls.__doc__ or "")
    callback = with_argument(cls, run, *argument) if argument else typer_callback(cls, run)
    app.command(name, help=doc)(callback)
    return None


__all__ = ["Command", "Fingerprints", "Result", "launch", "register", "command_params"]
