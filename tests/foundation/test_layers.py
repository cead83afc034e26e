"""The layering of DESIGN.md, enforced: no module imports from a layer below its own, the
packages import each other without cycles, and so do the parts inside a package (its
sub-packages and modules: `keisei.evaluation.ladder`, `keisei.training.callback_system`, ...).
Imports inside functions and `TYPE_CHECKING` blocks count as much as those at the top of a
module."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

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


def part_of(module: str, unit: str) -> str:
    """The part of `unit` that `module` is in: the sub-package or module right below the unit
    (`keisei.evaluation.ladder.run` -> `keisei.evaluation.ladder`); the unit itself for its
    `__init__`."""
    below = module.removeprefix(unit).lstrip(".")
    return f"{unit}.{below.split('.')[0]}" if below else unit


def part_edges() -> list[tuple[str, str, str, int]]:
    """(importing part, imported part, file, line) for every import between two parts of one
    unit. A package's own `__init__` (its face, handing names on) is no part."""
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        unit = unit_of(module)
        if unit is None:
            continue
        source = part_of(module, unit)
        for line, imported in imported_modules(path):
            if unit_of(imported) != unit:
                continue
            target = part_of(imported, unit)
            if unit not in (source, target) and target != source:
                result.append((source, target, str(path.relative_to(PACKAGE.parent)), line))
    return result


def find_cycle(pairs: list[tuple[str, str]]) -> list[str] | None:
    """A cycle among the (source, target) pairs, as the list of nodes along it; None if none."""
    graph: dict[str, set[str]] = {}
    for source, target in pairs:
        graph.setdefault(source, set()).add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node) :] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


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
    cycle = find_cycle([(source, target) for source, target, _, _ in edges()])
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_parts_of_a_package_import_each_other_without_cycles():
    """E.g. the callback system never imports the contract modules built on it
    (`keisei.training.callbacks`, `keisei.training.callback_manager`), and the ladder never
    imports evaluation during training, which plays its references."""
    found = part_edges()
    cycle = find_cycle([(source, target) for source, target, _, _ in found])
    links = set(pairwise(cycle or []))
    where = [f"{file}:{line}: {source} imports {target}"
             for source, target, file, line in found if (source, target) in links]  # fmt: skip
    assert cycle is None, "import cycle: " + " -> ".join(cycle or []) + "\n" + "\n".join(where)


def test_the_checker_sees_an_upward_import(tmp_path: Path):
    """The checker itself: a function-level import from a lower layer is found."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from keisei.training.trainer import Trainer\n")
    modules = [name for _, name in imported_modules(source)]
    assert modules == ["keisei.training.trainer"]
    assert layer_of(unit_of(modules[0]) or "") > layer_of("keisei.evaluation")


def test_the_part_checker_sees_a_cycle_inside_a_package():
    """The checker itself: two sub-packages that import each other are a cycle."""
    unit = "keisei.evaluation"
    assert part_of("keisei.evaluation.ladder.run", unit) == "keisei.evaluation.ladder"
    assert part_of("keisei.evaluation.match", unit) == "keisei.evaluation.match"
    assert part_of(unit, unit) == unit
    pairs = [("keisei.evaluation.ladder", "keisei.evaluation.players"),
             ("keisei.evaluation.players", "keisei.evaluation.ladder")]  # fmt: skip
    assert find_cycle(pairs) is not None
    assert find_cycle(pairs[:1]) is None
