"""The README and docs/*.md as a new user meets them: every image they link to is in the
repository, and every Python code block runs as written.

A file's Python blocks run in order in one namespace (a later block may use an earlier
one's names), on the base install. An HTML comment on the line before a block changes
that: ``<!-- not run: REASON -->`` skips it (keep these few: a cluster, a GPU),
``<!-- needs: MODULE -->`` runs it only where ``MODULE`` imports (the extra is installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from selection import selected_backends

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
MARK = re.compile(r"<!--\s*(not run|needs):\s*(.*?)\s*-->\s*\Z")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: its code, the line it starts on, its mark (if any)."""

    code: str
    line: int
    mark: tuple[str, str] | None


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a markdown text, dedented, with the mark before each."""
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("lang") != "python":
            continue
        indent = len(m.group("indent"))
        code = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        before = text[: m.start()].rstrip("\n ").splitlines()
        mark = MARK.search(before[-1]) if before else None
        line = text.count("\n", 0, m.start()) + 2
        blocks.append(Block(code, line, (mark.group(1), mark.group(2)) if mark else None))
    return blocks


def test_python_blocks_sees_marks_and_indented_blocks():
    text = (
        "```python\na = 1\n```\n<!-- not run: needs a cluster -->\n```python\nb\n```\n"
        "* item:\n\n  <!-- needs: dask -->\n  ```python\n  if a:\n      c = 2\n  ```\n"
        "```bash\nls\n```\n"
    )
    blocks = python_blocks(text)
    assert [b.code for b in blocks] == ["a = 1\n", "b\n", "if a:\n    c = 2\n"]
    assert [b.mark for b in blocks] == [None, ("not run", "needs a cluster"), ("needs", "dask")]
    assert [b.line for b in blocks] == [2, 6, 12]  # the first line of code


def _tracked(path: Path) -> bool:
    rel = str(path.relative_to(ROOT))
    out = subprocess.run(
        ["git", "ls-files", "--error-unmatch", rel], cwd=ROOT, capture_output=True, check=False
    )
    return out.returncode == 0


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_linked_image_is_in_the_repository(doc):
    links = [a or b for a, b in IMAGE.findall(doc.read_text(encoding="utf-8"))]
    local = [link for link in links if "://" not in link]
    missing = [link for link in local if not (doc.parent / link).is_file()]
    assert not missing, f"{doc.name} links to images that do not exist: {missing}"
    if (ROOT / ".git").exists() and shutil.which("git"):  # committed, not just built here
        untracked = [link for link in local if not _tracked(doc.parent / link)]
        assert not untracked, f"{doc.name} links to images git does not track: {untracked}"


@pytest.mark.skipif("numpy" not in selected_backends(), reason="the snippets run on numpy")
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_python_block_runs(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet that writes a file writes it here
    namespace: dict = {"__name__": "__doc_snippet__"}
    for block in python_blocks(doc.read_text(encoding="utf-8")):
        if block.mark is not None and block.mark[0] == "not run":
            continue
        if block.mark is not None and block.mark[0] == "needs":
            try:
                __import__(block.mark[1])
            except ImportError:
                continue
        exec(compile(block.code, f"{doc}:{block.line}", "exec"), namespace)
    if doc.name == "README.md":  # what the train() snippet's comments promise
        state = namespace["state"]  # two calls: 0 .. 199, then 200 .. 399 (each reads its ends)
        assert state.step == 400
        assert [i for i, _ in state.history] == [0, 100, 199, 200, 300, 399]
        assert namespace["exact"] == namespace["total"] == 16384


def test_few_blocks_are_left_unrun_and_each_says_why():
    unrun = [
        (doc.name, block.line, block.mark[1])
        for doc in DOCS
        for block in python_blocks(doc.read_text(encoding="utf-8"))
        if block.mark is not None and block.mark[0] == "not run"
    ]
    assert all(reason for _, _, reason in unrun), unrun
    assert len(unrun) <= 3, f"more snippets left unrun than a reader should meet: {unrun}"
