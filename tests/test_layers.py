"""The package map in common/__init__.py is complete and true: every module is listed once, in a
layer, and imports only from its own layer or earlier ones, with no import cycle anywhere."""

import ast
import re

import pytest
from conftest import REPOSITORY

COMMON = REPOSITORY / "common"


def layer_map():
    """{module: layer number} from the package docstring's "layer: ..." headings and module lines."""
    layers, current = {}, -1
    for line in ast.get_docstring(ast.parse((COMMON / "__init__.py").read_text())).splitlines():
        if re.match(r"^[a-z]+(:|$)", line):
            current += 1
        elif (listed := re.match(r"^    ([a-z_]+)\s", line)) and current >= 0:
            assert listed.group(1) not in layers, f"{listed.group(1)} is listed twice"
            layers[listed.group(1)] = current
    return layers


def common_imports(module):
    """The common modules a module imports, at its top or inside a function alike."""
    found = set()
    for node in ast.walk(ast.parse((COMMON / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("common."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("common.")}
    return found


@pytest.mark.timeout(30)
def test_every_module_is_mapped_once_in_a_layer():
    modules = {path.stem for path in COMMON.glob("*.py")} - {"__init__"}
    assert set(layer_map()) == modules


@pytest.mark.timeout(30)
def test_modules_import_only_from_their_own_layer_or_earlier_ones():
    layers = layer_map()
    upward = [f"{module} imports {other}" for module in layers for other in common_imports(module)
              if layers[other] > layers[module]]
    assert upward == []


@pytest.mark.timeout(30)
def test_no_import_cycle():
    imports = {module: common_imports(module) for module in layer_map()}

    def cycle_from(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        for other in sorted(imports[module]):
            if found := cycle_from(other, path + [module]):
                return found
        return None

    assert [cycle for module in imports if (cycle := cycle_from(module, []))] == []
