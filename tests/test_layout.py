"""The package's layering, read from its source with ``ast``: the math in ``xpnn/nn/``
imports nothing above it, and no module outside ``xpnn/nn/`` reaches a model's private
members (it calls the public, unchecked core of ``xpnn.nn.core`` instead)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xpnn"

# what xpnn/nn/ may import from xpnn: the layers below it, and itself
NN_MAY_IMPORT = ("xpnn.errors", "xpnn.errors", "xpnn.backends", "xpnn.nn")

# ``x._name`` outside xpnn/nn/ that is no model's member: (module, expression, why)
PRIVATE_ACCESS_ALLOWED = {
    ("cli.py", "super()._get_help_string"): "argparse's formatter hook, overridden",
    ("sweep.py", "parser._actions"): "argparse keeps a parser's options there",
    ("sweep.py", "argparse._SubParsersAction"): "argparse's subcommand action type",
}


def _modules(where: Path) -> list[Path]:
    return sorted(where.rglob("*.py"))


def _imported(tree: ast.AST, module: str) -> list[str]:
    """The absolute names of the modules ``tree`` imports (relative imports resolved
    against ``module``, the dotted name of its file)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                names.append(".".join([*base, node.module] if node.module else base))
            else:
                names.append(node.module or "")
    return names


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _upward(path: Path, may_import: tuple[str, ...]) -> list[str]:
    """The xpnn modules ``path`` imports that are not ``may_import`` or inside them."""
    return [
        name
        for name in _imported(ast.parse(path.read_text()), _dotted(path))
        if (name == "xpnn" or name.startswith("xpnn."))
        and not any(name == ok or name.startswith(ok + ".") for ok in may_import)
    ]


@pytest.mark.parametrize("path", _modules(PACKAGE / "nn"), ids=lambda p: p.name)
def test_nn_imports_nothing_above_it(path):
    upward = _upward(path, NN_MAY_IMPORT)
    assert upward == [], f"{path.name} imports {upward}; xpnn/nn/ may import only {NN_MAY_IMPORT}"


@pytest.mark.parametrize(
    ("path", "may_import"),
    [
        *((p, ("xpnn.errors", "xpnn.io")) for p in _modules(PACKAGE / "io")),
        (
            PACKAGE / "checkpoint.py",
            ("xpnn.errors", "xpnn.errors", "xpnn.backends", "xpnn.nn", "xpnn.optim", "xpnn.io"),
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_files_on_disk_sit_below_training(path, may_import):
    """Atomic writes, the lock and the checkpoint format know nothing of training."""
    assert _upward(path, may_import) == []


def _private_accesses(tree: ast.AST) -> list[str]:
    """Every ``x._name`` (not a dunder) whose ``x`` is not ``self`` or ``cls``."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(ast.unparse(node))
    return found


OUTSIDE_NN = [
    path
    for path in _modules(PACKAGE)
    if path.relative_to(PACKAGE).parts[0] not in ("nn", "backends")
]


@pytest.mark.parametrize(
    "path", OUTSIDE_NN, ids=lambda p: str(p.relative_to(PACKAGE)).replace("/", ".")
)
def test_no_module_outside_nn_reaches_private_members(path):
    """``xpnn/backends/`` is left out: it talks to the array libraries' own internals
    and never sees a model."""
    name = str(path.relative_to(PACKAGE))
    reached = [
        expr
        for expr in _private_accesses(ast.parse(path.read_text()))
        if (name, expr) not in PRIVATE_ACCESS_ALLOWED
    ]
    assert reached == [], f"{name} reaches private members: {reached}"


def test_the_checks_above_can_fail():
    """The two scanners find what they look for."""
    tree = ast.parse("import xpnn.training\nnet._forward(x)\nself._ok\nx.__len__\n")
    assert _imported(tree, "xpnn.nn.mlp") == ["xpnn.training"]
    assert _private_accesses(tree) == ["net._forward"]
    relative = ast.parse("from ..training import train\n")
    assert _imported(relative, "xpnn.nn.mlp") == ["xpnn.training"]
