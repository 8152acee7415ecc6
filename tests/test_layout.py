"""The package's layering, read from its source with ``ast``: every module imports only
its own layer (its folder, or itself for a one-file layer) and the layers below it, the
modules import one another without a cycle, and no module outside ``xpnn/nn/`` reaches
another object's private members (it calls the public, unchecked core of
``xpnn.nn.core`` instead); and the package's public face, ``help(xpnn)``.

The layers, bottom up (``docs/architecture.md``, ``DESIGN.md``)::

    errors.py, _version.py
    backends/, io/
    nn/, optim.py, datasets.py
    parallel/
    training/
    course/
    cli/
    __init__.py, __main__.py
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xpnn"

LAYERS: list[tuple[str, ...]] = [
    ("errors", "_version"),
    ("backends", "io"),
    ("nn", "optim", "datasets"),
    ("parallel",),
    ("training",),
    ("course",),
    ("cli",),
    ("__init__", "__main__"),
]
"""The units (a folder or a one-file module of ``xpnn/``; ``__init__`` is the package
root), bottom up. Units of one row do not import one another."""

BELOW_TRAINING = ("errors", "_version", "backends", "nn", "optim", "datasets")
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "errors": (),
    "_version": (),
    "backends": ("errors", "_version"),
    "io": ("errors", "_version"),  # files on disk know nothing of arrays or models
    "nn": ("errors", "_version", "backends"),
    "optim": ("errors", "_version", "backends"),
    "datasets": ("errors", "_version", "backends"),
    "parallel": BELOW_TRAINING,  # a gradient source for the loop, not the loop
    "training": (*BELOW_TRAINING, "io", "parallel"),
    "course": (*BELOW_TRAINING, "io", "parallel", "training"),
    "cli": (*BELOW_TRAINING, "io", "parallel", "training", "course"),
    # the public API: everything but the command line, which only ``python -m xpnn`` runs
    "__init__": (*BELOW_TRAINING, "io", "parallel", "training", "course"),
    "__main__": (*BELOW_TRAINING, "io", "parallel", "training", "course", "cli"),
}
"""What each unit may import besides itself: the layers below it, less what DESIGN.md
keeps apart (``io`` from ``nn``, ``optim``, ``datasets`` and ``parallel``)."""

# ``x._name`` outside xpnn/nn/ (the receiver not ``self``, ``cls`` or ``super()``):
# (module, expression) -> why it is allowed. Empty: none is.
PRIVATE_ACCESS_ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: ``xpnn.nn.rnn`` -> ``nn``; ``xpnn`` ->
    ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imported(tree: ast.AST, module: str, *, package: bool = False) -> list[str]:
    """The absolute names of the xpnn modules ``tree`` imports, anywhere in it (inside
    functions too): relative imports resolved against ``module`` (a ``package``'s
    ``__init__`` when ``package``), and ``from a import b`` as the module ``a.b`` where
    there is one, else ``a``."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if package else 0)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                inner = f"{source}.{alias.name}"
                names.append(inner if inner in MODULES else source)
    return [name for name in names if name == "xpnn" or name.startswith("xpnn.")]


@functools.cache
def _imports_of(module: str) -> list[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    return _imported(tree, module, package=path.name == "__init__.py")


def _ids(module: str) -> str:
    return module.removeprefix("xpnn.") if module != "xpnn" else "xpnn"


def test_the_table_follows_the_layers():
    """Every unit is in the table, and the table lets no unit import its own row or a
    row above it."""
    rows = {unit: row for row, units in enumerate(LAYERS) for unit in units}
    assert set(MAY_IMPORT) == set(rows) == {_unit(m) for m in MODULES}
    for unit, allowed in MAY_IMPORT.items():
        above = [other for other in allowed if rows[other] >= rows[unit]]
        assert above == [], f"{unit} may import {above}, in its own row or above"


@pytest.mark.parametrize("module", list(MODULES), ids=_ids)
def test_every_module_imports_only_its_layer_and_the_layers_below(module):
    unit = _unit(module)
    outside = [
        name
        for name in _imports_of(module)
        if _unit(name) != unit and _unit(name) not in MAY_IMPORT[unit]
    ]
    assert outside == [], f"{module} imports {outside}; {unit} may import {MAY_IMPORT[unit]}"


def test_nothing_imports_the_command_line_but_main_and_itself():
    """``xpnn.cli`` is the top of the library: only ``python -m xpnn`` and its own
    modules import it (``import xpnn`` does not load argparse's world)."""
    importers = [
        module
        for module in MODULES
        if _unit(module) not in ("cli", "__main__")
        and any(_unit(name) == "cli" for name in _imports_of(module))
    ]
    assert importers == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (``[a, b, ..., a]``), or ``[]`` where there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycle_between_modules():
    """The module graph (an import of ``a.b`` is an edge to ``a.b``, of a package to its
    ``__init__``) has no cycle, lazy imports inside functions included."""
    graph = {module: set(_imports_of(module)) - {module} for module in MODULES}
    assert _cycle(graph) == []


def _private_accesses(tree: ast.AST) -> list[str]:
    """Every ``x._name`` (not a dunder) whose ``x`` is not ``self``, ``cls`` or
    ``super()``: a reach into another object's private members."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            and not (
                isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "super"
            )
        ):
            found.append(ast.unparse(node))
    return found


OUTSIDE_NN = [module for module in MODULES if _unit(module) != "nn"]


@pytest.mark.parametrize("module", OUTSIDE_NN, ids=_ids)
def test_no_module_outside_nn_reaches_private_members(module):
    """A model's private members (``net._out``, ``net._check_array``) belong to
    ``xpnn/nn/``; every other layer (the backends included) uses public names."""
    path = MODULES[module]
    name = path.relative_to(PACKAGE).as_posix()
    reached = [
        expr
        for expr in _private_accesses(ast.parse(path.read_text()))
        if (name, expr) not in PRIVATE_ACCESS_ALLOWED
    ]
    assert reached == [], f"{name} reaches private members: {reached}"


def test_the_scanners_can_fail():
    """The scanners find what they look for: an upward import (absolute, relative, from
    a package's ``__init__``, inside a function), a cycle, a private reach."""
    tree = ast.parse(
        "import xpnn.training\nfrom xpnn import datasets, RNN\n"
        "def f():\n    from xpnn.cli import main\n"
        "net._forward(x)\nself._ok\nsuper()._fine()\nx.__len__\n"
    )
    assert _imported(tree, "xpnn.nn.mlp") == [
        "xpnn.training",
        "xpnn.datasets",
        "xpnn",
        "xpnn.cli.main",
    ]
    assert _private_accesses(tree) == ["net._forward"]
    relative = ast.parse("from ..training import loop\nfrom . import cells\n")
    assert _imported(relative, "xpnn.nn.mlp") == ["xpnn.training.loop", "xpnn.nn.cells"]
    assert _imported(relative, "xpnn.nn", package=True) == ["xpnn.training.loop", "xpnn.nn.cells"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_the_public_face_is_a_quickstart_and_the_public_names():
    """``help(xpnn)``: the package docstring's quickstart, then the names of ``__all__``
    (each importable, none private); the loop's, the plan's and the workers' internals
    stay out of it."""
    import pydoc

    import xpnn

    assert "Quickstart::" in xpnn.__doc__
    assert all(hasattr(xpnn, name) and not name.startswith("_") for name in xpnn.__all__)
    shown = pydoc.render_doc(xpnn, renderer=pydoc.plaintext)
    for internal in ("make_plan", "RunPlan", "starting_state", "check_positive", "Shard"):
        assert internal not in shown, internal
