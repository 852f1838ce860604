"""The package's layers import one way: a newcomer can trust the arrows.

Each sub-package may import only itself and the layers below it (the order
of :data:`LAYERS`); in particular placement imports nothing of the rest, the
request core imports no front end, and nothing on the request path imports
the operations tooling. Imports inside functions count too.
"""

import ast
from pathlib import Path

import pytest

import dtriad

PACKAGE = Path(dtriad.__file__).parent
# lowest first; a module may import its own layer and any layer before it
LAYERS = ["exceptions", "logs", "placement", "config", "backends", "core", "membership",
          "frontends", "ops"]


def layer_of(module: str) -> str | None:
    """``dtriad.core.requests`` -> ``core``; None for the package's own ``__init__``."""
    parts = module.split(".")
    if parts[0] != "dtriad" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the layers use absolute ones)"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("dtriad.")}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE
                 or p.stem not in ("__init__", "__main__"))


def test_every_module_is_in_a_layer():
    for path in MODULES:
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert layer in LAYERS, f"{path} is in no layer of {LAYERS}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    rank = LAYERS.index(own)
    upward = sorted(name for name in imports_of(path)
                    if (layer := layer_of(name)) in LAYERS and LAYERS.index(layer) > rank)
    assert not upward, f"{own} may not import {upward} (layers, lowest first: {LAYERS})"


def test_placement_imports_no_io():
    for path in (PACKAGE / "placement").glob("*.py"):
        tree = ast.parse(path.read_text())
        roots = {alias.name.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.Import) for alias in node.names}
        roots |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)}
        assert not roots & {"redis", "socket", "asyncio", "requests", "hiredis", "subprocess"}, path
