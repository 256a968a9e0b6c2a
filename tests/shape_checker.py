"""The type checker the test suite instruments modeldiff_cli with (pyproject.toml: ``--jaxtyping-packages=
modeldiff_cli,shape_checker.checker``; conftest.py puts tests/ on the path before modeldiff_cli is imported).

beartype, except that ``ctx: typer.Context`` also accepts typer's click Context: that base class is what typer
(0.2x, vendoring click) actually passes to a command's ``ctx`` parameter annotated as its documentation says."""

import typer
from beartype import BeartypeConf, FrozenDict, beartype

_base = next((c for c in typer.Context.__mro__[1:] if c.__name__ == "Context"), None)
_CONF = BeartypeConf(hint_overrides=FrozenDict({typer.Context: typer.Context | _base})) if _base else BeartypeConf()


def checker(func, *args, **kwargs):
    return beartype(func, *args, conf=_CONF, **kwargs)
