"""The layers the package's layout promises (docs/architecture.md), checked on every module's imports:
core imports no command, organism or report module; no command imports another command; the artifact
declarations (each command's artifacts.py, core/spine/declared.py) and the option declarations import neither
torch nor numpy (``--help`` and the report import them)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "modeldiff_cli"


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    package = parts[:-1]  # a module's package; an __init__'s is its own folder, also parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from . import x" imports module x
    return out


def _modules(folder: str) -> list[Path]:
    return sorted((PKG / folder).rglob("*.py"))


def test_core_imports_no_command_organism_or_report():
    bad = {str(p.relative_to(PKG)): sorted(m for m in _imports(p) if m.startswith(
        ("modeldiff_cli.commands", "modeldiff_cli.organisms", "modeldiff_cli.report")))
           for p in _modules("core")}
    assert not {k: v for k, v in bad.items() if v}


def test_no_command_imports_another():
    bad = {}
    for p in _modules("commands"):
        rel = p.relative_to(PKG / "commands").parts
        own = rel[0].removesuffix(".py")
        others = sorted(m for m in _imports(p) if m.startswith("modeldiff_cli.commands.")
                        and m.split(".")[2].removesuffix("_artifacts") != own.removesuffix("_artifacts"))
        if others:
            bad[str(p.relative_to(PKG))] = others
    assert not bad


def test_declarations_import_neither_torch_nor_numpy():
    light = [PKG / "core" / "spine" / f for f in ("declared.py", "spec.py", "ingredients.py", "compared.py")]
    light += sorted((PKG / "commands").glob("*/artifacts.py")) + [PKG / "commands" / "info_artifacts.py"]
    assert len(light) >= 11
    heavy = {str(p.relative_to(PKG)): sorted(m for m in _imports(p) if m.split(".")[0] in ("torch", "numpy"))
             for p in light}
    assert not {k: v for k, v in heavy.items() if v}
