"""Each command's output files, declared once: name, kind, description, and the columns or keys readers use.

A command's light ``artifacts.py`` module (no torch, no numpy) lists its :class:`Artifact` s; the command class
names that list (``Command.artifacts``), and from it

- the spine describes every file of a run in ``summary.json`` (``describe``);
- ``--help`` ends with the files the command writes (``help_text``);
- the writer takes each file's name (``Artifact.path``) and its columns (``Artifact.columns``) from it;
- the report's renderer reads a file through it (``report.runs.Run.read``), which warns when the file or a
  declared column / key / array is missing, so a renamed column is a warning on the run's page and a failing
  test (``tests/artifact_check.py``), not a silently empty chart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("table", "payload", "matrix", "plot", "text", "html")
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Artifact:
    """One output file, or a family of files named by ``{placeholders}`` (``{dataset}_global_token_stats.json``).

    ``columns``: what every such file holds and readers may rely on: a CSV's header, a JSON object's top-level
    keys (or, for a JSON list / JSONL, each record's keys), an NPZ's arrays. ``when``: the condition under which the
    command writes it, in words (``--prompt``), and ``made``: the same as a test of the command (``None``: always).
    """

    pattern: str
    kind: str
    description: str
    columns: tuple[str, ...] = ()
    when: str | None = None
    made: Callable[[Any], bool] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.pattern}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def glob(self) -> str:
        """The pattern with each ``{placeholder}`` as ``*`` (how summary.json describes the family)."""
        return _FIELD.sub("*", self.pattern)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(_FIELD.findall(self.pattern))

    def path(self, **values: Any) -> str:
        """The file's path inside the run directory, placeholders filled in."""
        missing = set(self.fields) - set(values)
        if missing:
            raise KeyError(f"{self.pattern}: no value for {', '.join(sorted(missing))}")
        return self.pattern.format(**values)

    def made_by(self, cmd: Any) -> bool:
        """Whether the run of ``cmd`` writes this artifact."""
        return self.made is None or bool(self.made(cmd))


def option_set(name: str) -> Callable[[Any], bool]:
    """``made``: the command's option ``name`` is set (true, non-empty, not None)."""
    return lambda cmd: bool(getattr(cmd, name))


def option_is_not(name: str, value: Any) -> Callable[[Any], bool]:
    """``made``: the command's option ``name`` is not ``value`` (e.g. ``--js-mode`` not ``none``)."""
    return lambda cmd: getattr(cmd, name) != value


def describe(run, artifacts: tuple[Artifact, ...]) -> None:
    """Describe every declared artifact on the run being written (``summary.json``'s artifact table)."""
    for a in artifacts:
        run.describe(a.glob, a.description, a.kind)


def help_text(artifacts: tuple[Artifact, ...]) -> str:
    """The end of a command's ``--help``: the files it writes (conditional ones with their condition)."""
    names = [a.glob + (f" (with {a.when})" if a.when else "") for a in artifacts if a.kind != "plot"]
    plots = [a.glob for a in artifacts if a.kind == "plot"]
    text = "Writes " + ", ".join(names)
    if plots:
        text += "; plots " + ", ".join(plots)
    return text + " (docs: the command's page lists every column)."
