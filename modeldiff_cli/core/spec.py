"""Options declared once, as dataclass fields; the Typer options are generated from them.

A field made with :func:`option` carries its flag, default and help. An *ingredient* is a dataclass of such
fields shared by many commands (a model pair, data, a readout, the run); a *command* is a dataclass whose
fields are ingredients plus its own options. :func:`typer_callback` walks a command class, flattens its
ingredients' fields into one Typer signature (each ingredient under its own ``--help`` panel), and on
invocation rebuilds the nested dataclasses from the parsed values. Old flag spellings become hidden options
that fill the same field and print a deprecation note.

Light imports only: this module runs on every ``--help``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer


@dataclass(frozen=True)
class Opt:
    """How one dataclass field appears on the command line."""

    flag: str  # "--top-k", or "--drop-punctuation/--keep-punctuation" for a boolean pair
    help: str
    aliases: tuple[str, ...] = ()  # further visible names
    old: tuple[str, ...] = ()  # hidden old spellings, kept for one release
    min: int | float | None = None
    result: bool = True  # part of the run configuration (False: where or how fast, not what is computed)
    role: str | None = None  # "base" / "ft" / "model": names a model (default-organism policy)
    data: bool = False  # names input data (default-organism policy)
    metavar: str | None = None

    @property
    def names(self) -> list[str]:
        return [self.flag, *self.aliases]

    @property
    def primary(self) -> str:
        return self.flag.split("/")[0]


def option(default: Any, flag: str, help: str, **kw) -> Any:
    """A dataclass field that is also a command-line option (see :class:`Opt` for the keywords)."""
    meta = {"opt": Opt(flag, help, **kw)}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class Ingredient:
    """Base of shared option groups; ``panel`` is the heading of their options in ``--help``."""

    panel: typing.ClassVar[str] = "Options"


def is_ingredient(tp) -> bool:
    return inspect.isclass(tp) and issubclass(tp, Ingredient) and dataclasses.is_dataclass(tp)


@dataclass(frozen=True)
class Param:
    """One flattened option: where its value goes (``path``), its Python type, default and declaration."""

    path: tuple[str, ...]
    type: Any
    default: Any
    opt: Opt
    panel: str

    @property
    def name(self) -> str:
        return self.path[-1]


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def params_of(cls, panel: str | None = None, prefix: tuple[str, ...] = ()) -> list[Param]:
    """Every option of a command or ingredient class, ingredients flattened in field order."""
    hints = _hints(cls)
    out: list[Param] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if is_ingredient(tp):
            out.extend(params_of(tp, tp.panel, (*prefix, f.name)))
        elif "opt" in f.metadata:
            out.append(Param((*prefix, f.name), tp, _default(f), f.metadata["opt"], panel or "Options"))
    return out


def command_params(cls) -> list[Param]:
    """The options of a command class, with its per-command default overrides and alias additions applied."""
    own_panel = getattr(cls, "panel", None) or cls.name.capitalize()
    params = params_of(cls, own_panel)
    overrides: dict = getattr(cls, "defaults", {}) or {}
    aliases: dict = getattr(cls, "aliases", {}) or {}
    olds: dict = getattr(cls, "old_flags", {}) or {}
    names = [p.name for p in params]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TypeError(f"{cls.__name__}: option names used twice: {sorted(dup)}")
    unknown = (set(overrides) | set(aliases) | set(olds)) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__}: overrides of unknown options {sorted(unknown)}")
    out = []
    for p in params:
        opt = p.opt
        default = p.default
        if p.name in overrides:
            default, why = overrides[p.name]
            opt = dataclasses.replace(opt, help=f"{opt.help} ({cls.name} default {default!r}: {why})")
        if p.name in aliases:
            opt = dataclasses.replace(opt, aliases=(*opt.aliases, *aliases[p.name]))
        if p.name in olds:
            opt = dataclasses.replace(opt, old=(*opt.old, *olds[p.name]))
        out.append(dataclasses.replace(p, default=default, opt=opt))
    return out


def _typer_type(tp):
    """Typer understands ``X | None`` and ``list[X] | None``; dataclass fields may say ``tuple[X, ...]``."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        return list[typing.get_args(tp)[0]]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _typer_type(args[0]) | None
    return tp


def _annotation(p: Param, *, hidden: bool = False, names: list[str] | None = None, default=None):
    kw: dict[str, Any] = {"help": p.opt.help if not hidden else None, "rich_help_panel": p.panel, "hidden": hidden}
    if p.opt.min is not None and not hidden:
        kw["min"] = p.opt.min
    if p.opt.metavar:
        kw["metavar"] = p.opt.metavar
    return Annotated[_typer_type(p.type) if not hidden else _typer_type(p.type) | None, typer.Option(*(names or p.opt.names), **kw)]


def _old_key(p: Param, i: int) -> str:
    return f"{p.name}__old{i}"


def signature(params: list[Param], *, context: bool) -> inspect.Signature:
    sig = []
    if context:
        sig.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
    for p in params:
        sig.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=_annotation(p)))
        for i, old in enumerate(p.opt.old):
            sig.append(inspect.Parameter(_old_key(p, i), inspect.Parameter.KEYWORD_ONLY, default=None,
                                         annotation=_annotation(p, hidden=True, names=[old])))
    return inspect.Signature(sig)


def build(cls, params: list[Param], values: dict[str, Any]):
    """The command instance from parsed values: old spellings folded in, ingredients nested."""
    from . import console

    flat: dict[str, Any] = {}
    for p in params:
        value = values.get(p.name, p.default)
        for i, old in enumerate(p.opt.old):
            given = values.get(_old_key(p, i))
            if given is not None:
                console.info(f"note: {old.split('/')[0]} is deprecated; use {p.opt.primary}")
                value = given
        flat[p.name] = _plain(value)
    hook = getattr(cls, "fill_defaults", None)
    if hook is not None:
        flat = hook(flat, params)
    return instantiate(cls, flat)


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


def instantiate(cls, flat: dict[str, Any]):
    """Build ``cls`` from flat option values (missing ones keep their defaults)."""
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if is_ingredient(tp):
            kwargs[f.name] = instantiate(tp, flat)
        elif f.name in flat and "opt" in f.metadata:
            kwargs[f.name] = flat[f.name]
    return cls(**kwargs)


def typer_callback(cls, run: Callable[[Any], Any], *, context: bool = False) -> Callable:
    """A function Typer can register: its signature is generated from ``cls``; calling it runs ``run(command)``."""
    params = command_params(cls)

    def callback(**values):
        ctx = values.pop("ctx", None)
        if ctx is not None and ctx.invoked_subcommand is not None:
            return None
        return run(build(cls, params, values))

    sig = signature(params, context=context)
    callback.__signature__ = sig  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}
    callback.__doc__ = inspect.cleandoc(cls.__doc__ or "")
    callback.__name__ = callback.__qualname__ = cls.name.replace("-", "_")
    return callback


@typing.no_type_check  # Typer's own objects come in here
def with_argument(cls, run: Callable[[Any, Any], Any], name: str, tp, help: str, metavar: str) -> Callable:
    """Like :func:`typer_callback`, with one positional argument first: calling it runs ``run(argument, options)``."""
    import inspect as _inspect

    options = typer_callback(cls, lambda opts: opts)
    param = _inspect.Parameter(name, _inspect.Parameter.KEYWORD_ONLY,
                               annotation=Annotated[tp, typer.Argument(help=help, metavar=metavar, show_default=False)])

    def command(**values):
        argument = values.pop(name)
        return run(argument, options(**values))

    sig = _inspect.signature(options)
    command.__signature__ = sig.replace(parameters=[param, *sig.parameters.values()])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
    command.__doc__ = options.__doc__
    command.__name__ = command.__qualname__ = cls.name.replace("-", "_")
    return command
