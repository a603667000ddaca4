"""The table catalog (transforms/tables.py) against the code: every table's writer module exists and
names the table, through the constant that holds its name; and no module outside a table's writer and
the modules listed as changing it calls a writing method of ``Lake`` on it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from transforms.tables import BY_NAME, TABLES, table

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for layer in ("transforms", "destinations", "assets", "pipelines") for p in (ROOT / layer).rglob("*.py")]
# Lake's methods that change a table (transforms/lake.py).
WRITING = {"append", "replace_days", "replace_day", "create_if_missing"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _constants() -> dict[str, set[str]]:
    """Table name → the names of the module-level constants that hold it."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and node.value.value in BY_NAME):
                found.setdefault(node.value.value, set()).add(node.targets[0].id)
    return found


def _source_of(module: str) -> str:
    path = ROOT.joinpath(*module.split("."))
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    assert files and all(f.is_file() for f in files), f"{module} is not a module of the repository"
    return "\n".join(f.read_text() for f in files)


def test_names_are_unique_and_lower_case():
    assert len(BY_NAME) == len(TABLES)
    assert all(re.fullmatch(r"[a-z][a-z_]*", t.name) for t in TABLES)
    with pytest.raises(KeyError, match="'nope' is not a table of the lake"):
        table("nope")


@pytest.mark.parametrize("entry", TABLES, ids=lambda t: t.name)
def test_the_writer_module_names_its_table(entry):
    constants = _constants().get(entry.name, set())
    assert constants, f"no constant holds the name {entry.name!r}"
    source = _source_of(entry.writer)
    assert any(re.search(rf"\b{c}\b", source) for c in constants) or f'"{entry.name}"' in source, (
        f"{entry.writer} never names {entry.name} ({', '.join(sorted(constants))})")
    for other in entry.also_changed_by:
        _source_of(other)


def test_only_a_tables_writers_call_lakes_writing_methods_on_it():
    constants = {c: name for name, cs in _constants().items() for c in cs}
    strays = []
    for path in SOURCES:
        module = _module(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in WRITING and node.args):
                continue
            first = node.args[0]
            name = constants.get(first.id) if isinstance(first, ast.Name) else (
                first.value if isinstance(first, ast.Constant) and first.value in BY_NAME else None)
            if name is None:
                continue
            entry = BY_NAME[name]
            allowed = (entry.writer, *entry.also_changed_by)
            if not any(module == m or module.startswith(m + ".") for m in allowed):
                strays.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}({name})")
    assert not strays, strays
