"""The layering of DESIGN.md, enforced: no module imports from a layer below its own, and the
packages import each other without cycles. Imports inside functions and `TYPE_CHECKING` blocks
count as much as those at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "keisei"

# Highest first, as in DESIGN.md; each unit may import only from its own layer or one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("config", ("keisei.config",)),
    ("logging", ("keisei.log", "keisei.timing")),
    ("game", ("keisei.shogi",)),
    ("model", ("keisei.model",)),
    ("search", ("keisei.search",)),
    ("learning", ("keisei.rl",)),
    ("checkpoints", ("keisei.checkpoint",)),
    ("evaluation", ("keisei.evaluation",)),
    ("training", ("keisei.training",)),
    (
        "interfaces",
        ("keisei.cli", "keisei.cli_args", "keisei.train_command", "keisei.usi", "keisei.__main__"),
    ),
]


def unit_of(module: str) -> str | None:
    """The unit (`keisei.rl`, `keisei.cli`, ...) a dotted module name belongs to."""
    for _, units in LAYERS:
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return unit
    return None


def layer_of(unit: str) -> int:
    return next(rank for rank, (_, units) in enumerate(LAYERS) if unit in units)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every `keisei` import anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; use keisei.…")
            module = node.module or ""
            found.append((node.lineno, module))
            # `from keisei import shogi` imports the sub-package itself.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names
                      if module == "keisei"]  # fmt: skip
    return [(line, name) for line, name in found if name == "keisei" or name.startswith("keisei.")]


def edges() -> list[tuple[str, str, str, int]]:
    """(importing unit, imported unit, file, line) for every import between two units."""
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(module_name(path))
        if source is None:
            if path != PACKAGE / "__init__.py":
                raise AssertionError(f"{path} belongs to no layer; add it to LAYERS")
            continue
        for line, module in imported_modules(path):
            target = unit_of(module)
            if target is not None and target != source:
                result.append((source, target, str(path.relative_to(PACKAGE.parent)), line))
    return result


def test_every_module_belongs_to_a_layer():
    edges()  # raises for a module outside every layer


def test_no_import_runs_upward():
    upward = [
        f"{file}:{line}: {source} ({LAYERS[layer_of(source)][0]}) imports {target} "
        f"({LAYERS[layer_of(target)][0]}), a lower layer"
        for source, target, file, line in edges()
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "\n".join(upward)


def test_packages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in edges():
        graph.setdefault(source, set()).add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        if unit in visiting:
            cycle = visiting[visiting.index(unit) :] + [unit]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if unit in done:
            return
        visiting.append(unit)
        for target in sorted(graph.get(unit, ())):
            visit(target)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)


def test_the_checker_sees_an_upward_import(tmp_path: Path):
    """The checker itself: a function-level import from a lower layer is found."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from keisei.training.trainer import Trainer\n")
    modules = [name for _, name in imported_modules(source)]
    assert modules == ["keisei.training.trainer"]
    assert layer_of(unit_of(modules[0]) or "") > layer_of("keisei.evaluation")
