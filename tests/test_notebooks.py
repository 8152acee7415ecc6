"""The committed notebooks, read as JSON (executing them is ``nox -s notebooks``, with
``tests/run_notebooks.py``): valid nbformat 4 without outputs, one cell that picks the
backend, every model built on it, and only the stable public API."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
COURSE_SECTIONS = [
    "1_backprop.ipynb",
    "2_optimizers.ipynb",
    "3_binary_addition.ipynb",
    "4_sine_wave.ipynb",
    "5_lstm_gru.ipynb",
    "6_irnn.ipynb",
]
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # nbformat 4.5's cell id
BACKEND_LINE = re.compile(r"^BACKEND = ", re.M)
MODEL_BUILDERS = {"MLP", "RNN", "from_params"}
# names being redesigned: the notebooks keep to the stable API
NOT_PUBLIC_ATTRIBUTES = {"core"}
NOT_PUBLIC_MODULES = {"xpnn.course.notebooks", "xpnn.course.settings"}
TRAIN_KEYWORDS_NOT_USED = {"start", "state", "history"}


def _notebook(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _code(nb: dict[str, Any]) -> list[str]:
    return [_source(cell) for cell in nb["cells"] if cell["cell_type"] == "code"]


def _python(source: str) -> ast.Module:
    """A code cell as Python: IPython's magics and shell lines become blank lines."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    return ast.parse("\n".join(lines))


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_every_course_section_has_its_notebook():
    assert [path.name for path in NOTEBOOKS] == COURSE_SECTIONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_nbformat_4_without_outputs(path):
    nb = _notebook(path)
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    ids = [cell["id"] for cell in nb["cells"]]
    assert all(CELL_ID.match(i) for i in ids) and len(set(ids)) == len(ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["metadata"], dict)
        source = cell["source"]
        assert isinstance(source, str) or all(isinstance(line, str) for line in source)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {cell['id']} has outputs"
            assert cell["execution_count"] is None, f"cell {cell['id']} has an execution count"
        else:
            assert "outputs" not in cell and "execution_count" not in cell
    assert any(cell["cell_type"] == "markdown" for cell in nb["cells"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_cell_picks_the_backend_and_every_model_uses_it(path):
    code = _code(_notebook(path))
    picking = [source for source in code if BACKEND_LINE.search(source)]
    assert len(picking) == 1, "one cell sets BACKEND"
    assert code.index(picking[0]) <= 1, "the backend is picked near the top"
    built = 0
    for source in code:
        for node in ast.walk(_python(source)):
            if isinstance(node, ast.Call) and _called(node) in MODEL_BUILDERS:
                built += 1
                assert "backend" in {k.arg for k in node.keywords}, ast.unparse(node)
    assert built > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_stable_public_api(path):
    for source in _code(_notebook(path)):
        for node in ast.walk(_python(source)):
            if isinstance(node, ast.Attribute):
                assert not node.attr.endswith("_unchecked"), ast.unparse(node)
                assert node.attr not in NOT_PUBLIC_ATTRIBUTES, ast.unparse(node)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = {f"{module}.{alias.name}" for alias in node.names}
                assert not ({module} | names) & NOT_PUBLIC_MODULES, ast.unparse(node)
            elif isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & NOT_PUBLIC_MODULES, ast.unparse(node)
            elif isinstance(node, ast.Call) and _called(node) == "train":
                used = {k.arg for k in node.keywords} & TRAIN_KEYWORDS_NOT_USED
                assert not used, ast.unparse(node)
