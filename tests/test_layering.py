"""Imports run only downward: transforms ← destinations ← assets ← pipelines (docs/architecture.md),
read from every module's source with ``ast`` (imports inside functions count too); and the CLI stays
a package of small modules, each command module listed in ``pipelines.cli.COMMANDS``."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given, strategies as st

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("transforms", "destinations", "assets", "pipelines")  # lowest first
CLI_MODULE_MAX_LINES = 200

# The upward imports that exist today, each (importing file, imported module). Listed exactly: the
# test fails on any new one, and on an entry that is gone (remove it from here when it is fixed).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an ``import`` or ``from … import`` of ``source`` names (relative ones resolved
    against ``module``), wherever the statement is: top level, function, class or ``if`` body."""
    found: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            # `from pipelines import resources` names the module pipelines.resources
            found.update(f"{name}.{alias.name}" for alias in node.names if _is_module(f"{name}.{alias.name}"))
    return found


def upward_imports(layer: str, imported: set[str]) -> set[str]:
    """The imported modules that belong to a layer above ``layer``."""
    rank = LAYERS.index(layer)
    return {name for name in imported
            if name.split(".")[0] in LAYERS and LAYERS.index(name.split(".")[0]) > rank}


def _layer_modules():
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            yield layer, path


def test_every_layer_has_modules():
    counts = {layer: sum(1 for found, _ in _layer_modules() if found == layer) for layer in LAYERS}
    assert all(counts[layer] >= 3 for layer in LAYERS), counts


def test_imports_run_only_downward():
    upward = set()
    for layer, path in _layer_modules():
        imported = imported_modules(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")
        # a `from pipelines import x` also names `pipelines` itself: report the most precise names only
        names = upward_imports(layer, imported)
        names = {n for n in names if not any(other.startswith(n + ".") for other in names)}
        upward.update((path.relative_to(ROOT).as_posix(), name) for name in names)
    assert upward - KNOWN_UPWARD == set(), "imports that run upward (docs/architecture.md, \"Layers\")"
    assert KNOWN_UPWARD - upward == set(), "known upward imports that are gone: remove them from KNOWN_UPWARD"


@given(st.sampled_from(LAYERS), st.sampled_from(LAYERS), st.sampled_from(["mod", "sub.mod"]),
       st.sampled_from(["import {t}.{m}", "from {t}.{m} import x", "from {t} import y",
                        "def f():\n    import {t}.{m}", "class C:\n    if True:\n        from {t}.{m} import z"]))
def test_the_scan_flags_exactly_the_upward_imports(layer, target, module, form):
    source = form.format(t=target, m=module)
    found = upward_imports(layer, imported_modules(source, f"{layer}.here"))
    assert bool(found) == (LAYERS.index(target) > LAYERS.index(layer)), (layer, source, found)


def test_relative_imports_resolve_to_their_package():
    assert imported_modules("from ..transforms import lake", "pipelines.cli.query") == {"pipelines.transforms"}
    assert imported_modules("from . import options", "pipelines.cli.query") == {"pipelines.cli", "pipelines.cli.options"}
    assert imported_modules("from .errors import UsageError", "pipelines.cli", is_package=True) == \
        {"pipelines.cli.errors"}
    assert imported_modules("from pipelines import resources, runner", "assets.x") == \
        {"pipelines", "pipelines.resources", "pipelines.runner"}
    assert upward_imports("transforms", {"pipelinesx.a", "os", "dagster"}) == set()


def test_cli_modules_are_small():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines())
             for path in sorted((ROOT / "pipelines" / "cli").rglob("*.py"))}
    assert len(sizes) >= 10, sizes
    assert {name: n for name, n in sizes.items() if n > CLI_MODULE_MAX_LINES} == {}


def test_every_command_module_is_registered():
    import pipelines.cli as cli

    with_register = {path.stem for path in (ROOT / "pipelines" / "cli").glob("*.py")
                     if any(isinstance(node, ast.FunctionDef) and node.name == "register"
                            for node in ast.parse(path.read_text(encoding="utf-8")).body)}
    assert with_register == {module.__name__.rsplit(".", 1)[1] for module in cli.COMMANDS}
    assert len(cli.COMMANDS) == len(set(cli.COMMANDS))
