"""Imports between the top-level packages and modules of ``forgetting`` run one way: down the layers
below, never up and never sideways, function-local imports included. ``docs/architecture.md`` draws
the same layers; a new package goes into one of them here."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "forgetting"
LAYERS = (                              # lowest first; each may import only from the layers before it
    ("errors", "mlproject"),
    ("registry", "device", "cli", "backends"),
    ("tracking", "data"),
    ("models", "sweep"),
    ("scoring",),                       # generation, engines, answer matching, MC/classifier scoring, judges
    ("rewards", "attacks"),
    ("training",),
    ("pruning", "attribution", "posttrain"),
    ("evaluation", "analysis"),
    ("stages",),
    ("studies",),                       # the grids: main's, the forgetting study's, launch's Slurm jobs
)
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def top_level(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported(tree: ast.AST):
    """``(line, top-level name)`` of every ``forgetting.<name>`` an import statement anywhere in ``tree`` reads."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "forgetting":
                yield from ((node.lineno, alias.name) for alias in node.names)
            elif node.module.startswith("forgetting."):
                yield node.lineno, node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[1]) for alias in node.names
                        if alias.name.startswith("forgetting."))


def test_every_package_has_a_layer():
    names = {top_level(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert names - set(LAYER) == set(), "place each new package in LAYERS"


def test_imports_between_packages_run_down_the_layers():
    upward = [f"{path.relative_to(PACKAGE.parent)}:{line} imports forgetting.{target} ({top_level(path)} is "
              f"layer {LAYER[top_level(path)]}, {target} layer {LAYER[target]})"
              for path in sorted(PACKAGE.rglob("*.py")) if top_level(path) != "__init__"
              for line, target in imported(ast.parse(path.read_text()))
              if target != top_level(path) and LAYER[target] >= LAYER[top_level(path)]]
    assert upward == []
