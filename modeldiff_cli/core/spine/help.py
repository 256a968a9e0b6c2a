"""``--help`` that reads at any width, 80 columns included (pipes, CI logs, default terminals).

Typer's own layout puts every option in one row of a table (name | type | help) and, when the row does not fit,
cuts the name or the default with '…' (``--crosscoder-lay…``); help texts written as wrapped docstrings keep
their line breaks, so they break mid-sentence. Here each option is two parts: its names and type on one line,
then its help (with the default and range click adds) on the lines below, indented and wrapped to the width,
never cut. Single line breaks inside a paragraph are joined; blank lines separate paragraphs. Options stay in
their ingredient's panel (Models, Data, Readout, Run, then the command's own).

:func:`readable_help` gives a built click command tree this layout: each Typer command and group becomes an
instance of the subclass below, which only overrides ``format_help`` (no state of its own), so every command
gets it wherever it was registered. Light imports only (runs on every ``--help``).
"""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup

INDENT = 4


def paragraphs(text: str | None) -> list[str]:
    """The help text as paragraphs: blank lines split, single line breaks joined (a docstring wrapped at
    120 columns reads as one sentence at any width); ``\\f`` ends the help, as in click."""
    text = (text or "").split("\f")[0]
    out, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def first_sentence(text: str) -> str:
    """Up to the first sentence end (. ? or ! then a capital or a backquote): a command's line in a list."""
    import re

    return re.split(r"(?<=[.?!])\s+(?=[A-Z`])", text, maxsplit=1)[0]


def _console():
    from rich.console import Console

    # width: the terminal's, else $COLUMNS, else 80 (rich's rule for a pipe)
    return Console(highlight=False, emoji=False, markup=False)


def _options(cmd, ctx) -> dict[str, list[tuple[str, str]]]:
    panels: dict[str, list[tuple[str, str]]] = {}
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)
        if record is None:
            continue
        default = "Arguments" if p.param_type_name == "argument" else "Options"
        panels.setdefault(getattr(p, "rich_help_panel", None) or default, []).append(record)
    return panels


def render(cmd, ctx) -> None:
    """Print ``cmd``'s help: usage, description, one panel per option group, then the sub-commands."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = _console()
    console.print(Padding(Text(cmd.get_usage(ctx).strip(), style="bold", overflow="fold"), (1, 1, 1, 1)))
    for para in paragraphs(cmd.help):
        console.print(Padding(Text(para, overflow="fold"), (0, 1, 1, 1)))
    for panel, records in _options(cmd, ctx).items():
        items = []
        for names, text in records:
            items.append(Text(names, style="bold cyan", overflow="fold"))
            if text:
                items.append(Padding(Text(" ".join(text.split()), overflow="fold"), (0, 0, 0, INDENT)))
        console.print(Panel(Group(*items), title=panel, title_align="left", border_style="dim"))
    names = cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []
    rows = []
    for name in names:
        sub = cmd.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        rows.append((name, first_sentence((paragraphs(sub.help) or [""])[0])))
    if rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold cyan")
        grid.add_column(ratio=1, overflow="fold")
        for name, text in rows:
            grid.add_row(name, text)
        console.print(Panel(grid, title="Commands", title_align="left", border_style="dim"))


class ReadableCommand(TyperCommand):
    def format_help(self, ctx, formatter) -> None:
        render(self, ctx)


class ReadableGroup(TyperGroup):
    def format_help(self, ctx, formatter) -> None:
        render(self, ctx)


def readable_help(cmd) -> None:
    """Give ``cmd`` and every command under it the layout of this module (in place)."""
    if type(cmd) is TyperCommand:
        cmd.__class__ = ReadableCommand
    elif type(cmd) is TyperGroup:
        cmd.__class__ = ReadableGroup
    for sub in (getattr(cmd, "commands", None) or {}).values():
        readable_help(sub)
