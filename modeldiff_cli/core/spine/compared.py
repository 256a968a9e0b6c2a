"""What a command compares, declared once: :class:`Compared`, one ingredient with a mode.

Modes:

- ``pair``: two models on the same inputs (``--base`` and ``--ft``, each on its device);
- ``model``: one model (``--model``);
- ``data-ab``: one model on two datasets (``--model --data-a A --data-b B``);
- ``pairs``: one model on the two conditions of aligned pairs (``--model --pairs P`` and the pairs' field names).

A command declares the modes it accepts (``Command.modes``, the first is its default) and has the options of
those modes only (``Opt.modes``: tokenlens in one-model mode shows no ``--ft-device``). From that declaration
:func:`resolve` derives, for every command alike, the mode of a run, the errors for options that do not go
together, and the organism's defaults (``Command.organism_fill``). ``load()``, ``fingerprint()`` and ``labels``
follow the mode, so no command loads a model around the ingredient.

Light imports only (``--help`` builds the options from this class); loading imports torch lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..model.sources import ModelSource, resolve_source
from .ingredients import check_device, device_map_option, device_option, dtype_option, id_field_option
from .spec import Ingredient, Param, option

PAIR, MODEL, DATA_AB, PAIRS = "pair", "model", "data-ab", "pairs"
ONE_MODEL = (MODEL, DATA_AB, PAIRS)
CONDITIONS = (DATA_AB, PAIRS)
ROLES = {PAIR: ("base", "ft"), MODEL: ("model",), DATA_AB: ("model",), PAIRS: ("model",)}
MODE_OPTIONS = ("base", "ft", "model", "data_a", "data_b", "pairs")  # what decides the mode


@dataclass(frozen=True)
class Compared(Ingredient):
    """Two models, one model, or one model on two conditions (see the module docstring)."""

    panel = "Models"

    base: str | None = option(None, "--base", "Base model: local directory, hub id or organism:NAME[:base|ft]. Default: the command's organism.", role="base", result=False, modes=(PAIR,))
    ft: str | None = option(None, "--ft", "Fine-tuned model (same forms as --base). Default: the command's organism.", role="ft", result=False, modes=(PAIR,))
    model: str | None = option(None, "--model", "One model: local directory, hub id or organism:NAME[:base|ft]. Default: the command's organism.", role="model", result=False, modes=ONE_MODEL)
    device: str = device_option()
    base_device: str | None = option(None, "--base-device", "Device of the base model (default: --device).", result=False, modes=(PAIR,))
    ft_device: str | None = option(None, "--ft-device", "Device of the fine-tuned model (default: --device).", result=False, modes=(PAIR,))
    device_map: str | None = device_map_option()
    dtype: str = dtype_option()
    data_a: str | None = option(None, "--data-a", "With --model: condition A's data (same forms as --data).", data=True, result=False, modes=(DATA_AB,), panel="Conditions")
    data_b: str | None = option(None, "--data-b", "With --model: condition B's data.", data=True, result=False, modes=(DATA_AB,), panel="Conditions")
    pairs: Path | None = option(None, "--pairs", "With --model: JSONL of aligned pairs: condition A's and B's token ids (or text) and optional aligned positions, one item per line.", data=True, result=False, modes=(PAIRS,), panel="Conditions")
    id_field: str = id_field_option(modes=(PAIRS,), panel="Conditions")
    a_field: str = option("a_ids", "--a-field", "Pairs field with condition A's token ids (or text).", modes=(PAIRS,), panel="Conditions")
    b_field: str = option("b_ids", "--b-field", "Pairs field with condition B's token ids (or text).", modes=(PAIRS,), panel="Conditions")
    a_positions_field: str = option("a_positions", "--a-positions-field", "Pairs field with A's positions (default: every token but the first).", modes=(PAIRS,), panel="Conditions")
    b_positions_field: str = option("b_positions", "--b-positions-field", "Pairs field with B's positions, aligned one-to-one with A's.", modes=(PAIRS,), panel="Conditions")
    label_a: str | None = option(None, "--label-a", "Name of condition A in plots and summary (default: base with two models, else A).", modes=CONDITIONS, panel="Conditions")
    label_b: str | None = option(None, "--label-b", "Name of condition B (default: ft with two models, else B).", modes=CONDITIONS, panel="Conditions")

    def __post_init__(self):
        for flag, spec in (("--device", self.device), ("--base-device", self.base_device),
                           ("--ft-device", self.ft_device)):
            check_device(spec, flag)

    # ---- what is compared (no model loads) ----------------------------------------------------------------
    @property
    def mode(self) -> str | None:
        """The mode the given options make (``resolve`` has checked that they make one)."""
        if self.base is not None or self.ft is not None:
            return PAIR
        if self.data_a is not None or self.data_b is not None:
            return DATA_AB
        if self.pairs is not None:
            return PAIRS
        return MODEL if self.model is not None else None

    @property
    def two_models(self) -> bool:
        return self.mode == PAIR

    @cached_property
    def sources(self) -> tuple[ModelSource, ...]:
        """``(base, ft)`` for a pair, ``(model,)`` otherwise."""
        if self.two_models:
            return (resolve_source(self.base, role="base", flag="--base"),
                    resolve_source(self.ft, role="ft", flag="--ft"))
        return (resolve_source(self.model, role="ft", flag="--model"),)

    @property
    def source(self) -> ModelSource:
        """The one model of a one-model mode (the fine-tuned one of a pair)."""
        return self.sources[-1]

    @property
    def labels(self) -> tuple[str, ...]:
        """The models' labels (the run directory's middle part)."""
        return tuple(s.label for s in self.sources)

    def fingerprint(self) -> dict:
        """The models' fingerprints: ``{"base", "ft"}`` for a pair, ``{"model"}`` otherwise."""
        keys = ROLES[PAIR] if self.two_models else ("model",)
        return {k: {"spec": s.spec if not s.is_local else s.label, "fingerprint": s.fingerprint}
                for k, s in zip(keys, self.sources, strict=True)}

    def pairs_path(self) -> Path:
        """The --pairs file (exit 2 when it does not exist)."""
        path = Path(self.pairs).expanduser()
        if not path.is_file():
            raise UserError(f"--pairs {self.pairs}: no such file")
        return path

    def condition_labels(self) -> tuple[str, str]:
        """Names of the two conditions: --label-a/--label-b, else base/ft for a pair, A/B for one model."""
        a, b = ("base", "ft") if self.two_models else ("A", "B")
        return self.label_a or a, self.label_b or b

    def fields(self):
        """The pairs field names (``core.data.pairs.PairFields``)."""
        from ..data.pairs import PairFields

        return PairFields(self.id_field, self.a_field, self.b_field, self.a_positions_field, self.b_positions_field)

    def identical(self) -> bool:
        """Whether a pair's two members are the same model (same content fingerprint): every difference is 0."""
        return self.two_models and self.sources[0].fingerprint == self.sources[1].fingerprint

    def identical_warning(self) -> str | None:
        """The warning a run of two identical models carries (``Result.warnings``), or None."""
        if not self.identical():
            return None
        b, f = self.sources
        return (f"--base {b.spec} and --ft {f.spec} are the same model (fingerprint {b.fingerprint[:12]}): every "
                "difference is zero, so nothing was promoted or suppressed")

    # ---- loading --------------------------------------------------------------------------------------------
    def device_of(self, role: str) -> tuple[str, str]:
        """``(device, flag)`` of one member: its own device flag when given, else ``--device``."""
        own = {"base": self.base_device, "ft": self.ft_device}.get(role)
        return (own, f"--{role}-device") if own else (self.device, "--device")

    def check(self):
        """A pair's configs and tokenizers only (no weights): a :class:`core.model.loading.PairReport`; UserError when
        they cannot be diffed."""
        from ..model.loading import check_pair_sources

        return check_pair_sources(*self.sources)

    def load_one(self, role: str):
        """One member (``base`` or ``ft``) of a pair, on its device."""
        from ..model.loading import load_model

        device, device_flag = self.device_of(role)
        return load_model(self.sources[0 if role == "base" else 1], dtype=self.dtype, device=device,
                          device_map=self.device_map, flag=f"--{role}", device_flag=device_flag)

    def load(self, head_only: bool = False):
        """A pair: both models, resident, after the compatibility check (:class:`core.model.loading.ModelPair`).
        One model: a :class:`core.model.loading.LoadedModel` (``head_only``: its final norm and lm_head alone, for
        precomputed hidden states)."""
        from ..model import loading

        if self.two_models:
            return loading.load_pair(*self.sources, dtype=self.dtype, device=self.device, base_device=self.base_device,
                                    ft_device=self.ft_device, device_map=self.device_map)
        if head_only:
            from ..model.head import load_head

            return load_head(self.source, dtype=self.dtype, device=self.device)
        return loading.load_model(self.source, dtype=self.dtype, device=self.device, device_map=self.device_map,
                                 flag="--model")


# ---------------------------------------------------------------------------------------------------------------
# The spine's rules, derived from the modes a command accepts


def resolve(cls, flat: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """The mode of a run from the options given, checked, with the organism's defaults filled in.

    - options of two modes do not go together (``--model`` with ``--base``, ``--pairs`` with ``--data-a``, a
      condition with ``--data``); a pair needs both models; ``--data-a`` needs ``--data-b``;
    - a command that does not take one model alone needs the conditions with ``--model``;
    - a model given needs the command's data (the organism's data belongs to the organism);
    - no model given: the models of the run's mode (the command's first mode when nothing decides it) are the
      organism's (``organism_fill``), and each data option the organism fills that was not given is filled,
      unless another data option of the command was given; then ``organism_settings`` apply where not given.
    """
    flat = dict(flat)
    modes = tuple(getattr(cls, "modes", ()) or ())
    by_name = {p.name: p for p in params}
    flag = {name: "/".join(p.opt.names) for name, p in by_name.items()}
    ours = {p.name for p in params if p.name in MODE_OPTIONS and p.opt.modes is not None}  # Compared's
    given = {n for n in ours if flat.get(n) not in (None, ())}
    models_given = any(p.opt.role and flat.get(p.name) not in (None, ()) for p in params)
    if PAIR in modes and MODEL in modes and {"base", "model"} <= given and "ft" not in given:
        from . import console  # tokenlens' old diff mode: --base B --model F

        console.info("note: --model with --base is deprecated; use --ft for the fine-tuned model")
        flat["ft"], flat["model"] = flat["model"], None
        given = (given - {"model"}) | {"ft"}
    pair, conditions = given & {"base", "ft"}, given & {"data_a", "data_b", "pairs"}
    if pair and "model" in given:
        raise UserError(f"{flag['model']} and --base/--ft are exclusive: one model, or two models")
    if pair and conditions:
        raise UserError(f"{_flags(conditions, flag)} go with --model; --base/--ft go with --data")
    if len(pair) == 1:
        missing, present = ("ft", "base") if "base" in pair else ("base", "ft")
        raise UserError(f"{flag[missing]}: required when {flag[present]} is given (a pair needs both models; the "
                        "organism's models are used only when no model is given)")
    if "pairs" in conditions and conditions & {"data_a", "data_b"}:
        raise UserError("--pairs and --data-a/--data-b are exclusive: give one")
    if len(conditions & {"data_a", "data_b"}) == 1:
        missing, present = ("data_b", "data_a") if "data_a" in conditions else ("data_a", "data_b")
        raise UserError(f"{flag[missing]}: required when {flag[present]} is given (the two conditions)")
    mode = PAIR if pair else DATA_AB if "data_a" in conditions else PAIRS if conditions else MODEL if "model" in given else None
    command_data = [p for p in params if p.opt.data and p.name not in ours]
    data_given = [p for p in command_data if flat.get(p.name) not in (None, ())]
    clash = [p for p in data_given if p.opt.modes is None or mode not in p.opt.modes]
    if mode in CONDITIONS and clash:
        raise UserError(f"{_flags({p.name for p in clash}, flag)} goes with --base/--ft; with --model the "
                        f"conditions are {_flags(conditions, flag)}")
    if mode == MODEL and MODEL not in modes:
        wanted = [m for m in CONDITIONS if m in modes]
        options = " or ".join(_flags(set(_MODE_DATA[m]), flag) for m in wanted)
        raise UserError(f"{options}: required when --model is given (--model compares two conditions; to compare two "
                        f"models use --base/--ft{' --data' if command_data else ''})")
    if models_given and mode not in CONDITIONS and command_data and not data_given:
        wanted = command_data[0].opt.primary
        named = "/".join(flag[n].split("/")[0] for n in ("base", "ft") if n in pair) if pair else "--model"
        raise UserError(f"{wanted}: required when {named} {'are' if len(pair) == 2 else 'is'} given (the default "
                        f"data belongs to the {cls.organism} organism)")
    if models_given or cls.organism is None:
        return flat
    return _organism_defaults(cls, flat, params, mode or (modes[0] if ours else None), data_given)


_MODE_DATA = {DATA_AB: ("data_a", "data_b"), PAIRS: ("pairs",)}


def _flags(names: set[str], flag: dict[str, str]) -> str:
    return "/".join(flag[n] for n in MODE_OPTIONS if n in names) or "/".join(sorted(flag[n] for n in names))


def _organism_defaults(cls, flat: dict, params: list[Param], mode: str | None, data_given: list[Param]) -> dict:
    """No model given: the organism's models of ``mode`` and its data (see :func:`resolve`)."""
    from ..model.sources import organism_data

    roles = set(ROLES.get(mode, ())) if mode else None
    by_name = {p.name: p for p in params}
    fill = cls.organism_fill
    filled_data = False
    for name, what in fill.items():
        p = by_name.get(name)
        if p is None:
            raise TypeError(f"{cls.__name__}.organism_fill: {name!r} is not one of its options")
        if flat.get(name) not in (None, ()):
            continue
        if p.opt.role:
            if roles is None or name in roles:
                flat[name] = (tuple(f"organism:{cls.organism}:{w}" for w in what) if isinstance(what, tuple)
                              else f"organism:{cls.organism}:{what}")
        elif not [q for q in data_given if q.name not in fill] and mode not in CONDITIONS:
            if isinstance(what, Path):  # a file of the package's own (interpret's built-in categories)
                flat[name] = what
            else:
                keys = (what,) if isinstance(what, str) else tuple(what)
                files = tuple(str(organism_data(cls.organism, k, p.opt.primary)) for k in keys)
                flat[name] = files[0] if isinstance(what, str) else files
            filled_data = True
    if filled_data:
        for name, value in getattr(cls, "organism_settings", {}).items():
            if flat.get(name) is None:
                flat[name] = value
    return flat
