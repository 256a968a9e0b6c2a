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
    """How one dataclass field appears on the command line, and the values it takes.

    The bounds (``min`` / ``max`` inclusive, ``above`` / ``below`` exclusive) and ``choices`` are checked by the
    spine (:func:`check_value`) for the CLI and for Python construction (``Command.make``) alike, and shown in
    ``--help``. ``sep``: the value is a ``sep``-separated list whose items must each be one of ``choices``.
    ``modes``: the modes of what is compared (``core.spine.compared``) the option belongs to; a command that accepts
    none of them does not have the option. ``when``: a class attribute of the command that must be true for the
    command to have the option (e.g. ``resumable`` for ``--checkpoint-every``).
    """

    flag: str  # "--top-k", or "--drop-punctuation/--keep-punctuation" for a boolean pair
    help: str
    aliases: tuple[str, ...] = ()  # further visible names
    old: tuple[str, ...] = ()  # hidden old spellings, kept for one release
    min: int | float | None = None
    max: int | float | None = None
    above: int | float | None = None
    below: int | float | None = None
    choices: tuple[Any, ...] | None = None
    sep: str | None = None
    modes: tuple[str, ...] | None = None
    when: str | None = None
    panel: str | None = None  # a help panel of its own (default: its ingredient's)
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

    def range_text(self) -> str | None:
        """The bounds in words ("at least 1", "in (0, 1]"), or None."""
        lo = (f"[{_num(self.min)}", self.min) if self.min is not None else (f"({_num(self.above)}", self.above) \
            if self.above is not None else None
        hi = (f"{_num(self.max)}]", self.max) if self.max is not None else (f"{_num(self.below)})", self.below) \
            if self.below is not None else None
        if lo and hi:
            return f"in {lo[0]}, {hi[0]}"
        if lo:
            return f"at least {_num(self.min)}" if self.min is not None else f"greater than {_num(self.above)}"
        if hi:
            return f"at most {_num(self.max)}" if self.max is not None else f"less than {_num(self.below)}"
        return None

    def rule_text(self) -> str | None:
        """What ``--help`` adds after the help text: the choices or the bounds."""
        if self.choices:
            return ("a comma list of " if self.sep else "one of ") + ", ".join(map(_text, self.choices))
        return self.range_text()


def _num(x: int | float) -> str:
    return f"{x:g}"


def _text(x: Any) -> str:
    return _num(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def check_value(opt: Opt, value: Any) -> None:
    """A UserError naming the flag when ``value`` breaks the option's bounds or choices (None passes)."""
    from ..errors import UserError

    if value is None:
        return
    if opt.choices is not None:
        if isinstance(value, tuple):
            items = list(value)
        else:
            items = [v.strip() for v in str(value).split(opt.sep)] if opt.sep else [value]
        bad = [v for v in items if v not in opt.choices]
        if bad or not [v for v in items if v != ""]:
            what = "a comma list of" if opt.sep else "one of"
            raise UserError(f"{opt.primary} {_text(value)!r}: expected {what} {', '.join(map(_text, opt.choices))}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    broken = ((opt.min is not None and value < opt.min) or (opt.max is not None and value > opt.max)
              or (opt.above is not None and value <= opt.above) or (opt.below is not None and value >= opt.below))
    if broken:
        raise UserError(f"{opt.primary} {_num(value)}: must be {opt.range_text()}")


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
            opt = f.metadata["opt"]
            out.append(Param((*prefix, f.name), tp, _default(f), opt, opt.panel or panel or "Options"))
    return out


def has_option(cls, opt: Opt) -> bool:
    """Whether command ``cls`` has the option: it accepts one of its modes, and its ``when`` attribute is true."""
    if opt.modes is not None and not set(opt.modes) & set(getattr(cls, "modes", ())):
        return False
    return opt.when is None or bool(getattr(cls, opt.when, False))


def command_params(cls) -> list[Param]:
    """The options of a command class (those of the modes it accepts), with its per-command defaults and aliases
    applied; the run's own options (``RunOpts``, then what the base class owns) after the command's ingredients."""
    own_panel = getattr(cls, "panel", None) or cls.name.capitalize()
    params = [p for p in params_of(cls, own_panel) if has_option(cls, p.opt)]
    late = [p for p in params if p.panel == "Run"]
    params = [p for p in params if p.panel != "Run"] + late
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
    rule = p.opt.rule_text()
    text = p.opt.help if not rule else f"{p.opt.help} [{rule}]"
    kw: dict[str, Any] = {"help": text if not hidden else None, "rich_help_panel": p.panel, "hidden": hidden}
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
    """The command instance from parsed values: old spellings folded in, the command's defaults policy
    (``fill_defaults``), every value checked against its option's bounds and choices, ingredients nested."""
    from ..errors import UserError
    from . import console

    known = {p.name for p in params} | {_old_key(p, i) for p in params for i in range(len(p.opt.old))}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{cls.name}: no option {', '.join(unknown)} (its options: {', '.join(sorted(p.name for p in params))})")
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
    for p in params:
        flat[p.name] = _as_declared(p, flat.get(p.name))
        check_value(p.opt, flat[p.name])
    return instantiate(cls, flat, params)


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


def _as_declared(p: Param, value):
    """A value as its option declares it: a path option's string as a Path; a repeatable (tuple) option's value
    as a tuple (one string becomes a tuple of one; with ``sep``, every item is split on it too: ``--method a,b
    --method c`` is a, b, c)."""
    if isinstance(value, str) and _is_path(p.type):
        from pathlib import Path

        return Path(value)
    if value is None or not _is_tuple(p.type):
        return value
    items = (value,) if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) else tuple(value)
    items = tuple(str(v) if not isinstance(v, str) and hasattr(v, "__fspath__") else v for v in items)
    if p.opt.sep:
        items = tuple(part.strip() for v in items for part in str(v).split(p.opt.sep) if part.strip())
    return items


def _is_path(tp) -> bool:
    from pathlib import Path

    return tp is Path or Path in typing.get_args(tp)


def _is_tuple(tp) -> bool:
    if typing.get_origin(tp) is tuple:
        return True
    return any(typing.get_origin(a) is tuple for a in typing.get_args(tp))


def instantiate(cls, flat: dict[str, Any], params: list[Param] | None = None, prefix: tuple[str, ...] = ()):
    """Build ``cls`` from flat option values: each of ``params`` (default: every option of ``cls``) at its path;
    fields that are not options of the command keep their defaults."""
    params = params_of(cls) if params is None else params
    hints = _hints(cls)
    at = {p.path: p.name for p in params}
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = (*prefix, f.name)
        if is_ingredient(tp):
            kwargs[f.name] = instantiate(tp, flat, params, path)
        elif path in at and at[path] in flat:
            kwargs[f.name] = flat[at[path]]
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
