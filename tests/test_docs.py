"""The README and docs/*.md as a new user meets them: every image they show is committed,
and every Python code block runs as written, as a script in a process of its own (as a
user saves and runs it: a block that starts worker processes without
``if __name__ == "__main__":`` fails here as it fails there).

A file's unmarked blocks make one script, in order (a later block may use an earlier
one's names), run on the base install. An HTML comment on the line before a block changes
that: ``<!-- not run: REASON -->`` skips it (keep these few: a cluster, a GPU);
``<!-- needs: MODULE -->`` makes it a script of its own (after the file's unmarked blocks
before it) that runs where ``MODULE`` imports; a block that needs dask starts a cluster,
so it runs in the distributed session (``XPNN_DISTRIBUTED=1``), where the unmarked
scripts, run in the numpy session, are not run again.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from selection import selected_backends

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 300
DISTRIBUTED = os.environ.get("XPNN_DISTRIBUTED") == "1"
CLUSTER_MODULES = ("dask", "distributed")  # a block needing one of these starts a cluster

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
MARK = re.compile(r"<!--\s*(not run|needs):\s*(.*?)\s*-->\s*\Z")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: its code, the line it starts on, its mark (if any)."""

    code: str
    line: int
    mark: tuple[str, str] | None


@dataclass(frozen=True)
class Script:
    """Blocks of one file run as one script; ``needs`` the module it needs (None: the
    base install)."""

    doc: Path
    blocks: tuple[Block, ...]
    needs: str | None

    @property
    def name(self) -> str:
        return f"{self.doc.name}:{self.blocks[-1].line}" if self.needs else self.doc.name


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


def scripts(doc: Path, text: str | None = None) -> list[Script]:
    """The scripts of ``doc``: its unmarked blocks as one (if any), and one for each
    ``needs`` block, after the unmarked blocks before it."""
    blocks = python_blocks(doc.read_text(encoding="utf-8") if text is None else text)
    plain = tuple(b for b in blocks if b.mark is None)
    found = [Script(doc, plain, None)] if plain else []
    for block in blocks:
        if block.mark is not None and block.mark[0] == "needs":
            before = tuple(b for b in plain if b.line < block.line)
            found.append(Script(doc, (*before, block), block.mark[1]))
    return found


def run_script(script: Script, folder: Path) -> subprocess.CompletedProcess:
    """Write ``script`` into ``folder`` as a .py file and run it there with this Python;
    a traceback's lines name the doc's lines too."""
    path = folder / f"{script.doc.stem.lower()}_snippets.py"
    lines: list[str] = []
    where: dict[int, int] = {}  # script line -> doc line
    for block in script.blocks:
        lines.append(f"# {script.doc.name}, line {block.line}")
        for k, code in enumerate(block.code.splitlines()):
            lines.append(code)
            where[len(lines)] = block.line + k
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, path.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "MPLBACKEND": "Agg"},
        check=False,
    )

    def named(m: re.Match) -> str:
        line = int(m.group(1))
        return f"{m.group(0)} ({script.doc.name} line {where[line]})" if line in where else m[0]

    stderr = re.sub(rf'(?<=File "{re.escape(str(path))}", )line (\d+)', named, result.stderr)
    stderr = re.sub(rf'(?<=File "{re.escape(path.name)}", )line (\d+)', named, stderr)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr)


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
    plain, dask = scripts(Path("x.md"), text)
    assert (plain.blocks, plain.needs) == ((blocks[0],), None)
    assert (dask.blocks, dask.needs, dask.name) == ((blocks[0], blocks[2]), "dask", "x.md:12")


def test_a_block_runs_as_a_script_and_its_error_names_the_doc_line(tmp_path):
    """``__name__`` is ``"__main__"`` (exec inside pytest would give another), and a
    failure points at the doc's line."""
    text = "```python\nassert __name__ == '__main__'\nx = 1\n```\n\n```python\n\nx / 0\n```\n"
    (script,) = scripts(tmp_path / "guide.md", text)
    result = run_script(script, tmp_path)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr
    assert "(guide.md line 8)" in result.stderr, result.stderr


def _tracked(path: Path) -> bool:
    rel = str(path.relative_to(ROOT))
    out = subprocess.run(
        ["git", "ls-files", "--error-unmatch", rel], cwd=ROOT, capture_output=True, check=False
    )
    return out.returncode == 0


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_picture_shown_is_committed(doc):
    links = [a or b for a, b in IMAGE.findall(doc.read_text(encoding="utf-8"))]
    local = [link for link in links if "://" not in link]
    missing = [link for link in local if not (doc.parent / link).is_file()]
    assert not missing, f"{doc.name} shows pictures that do not exist: {missing}"
    if (ROOT / ".git").exists() and shutil.which("git"):  # committed, not just built here
        untracked = [link for link in local if not _tracked(doc.parent / link)]
        assert not untracked, f"{doc.name} shows pictures git does not track: {untracked}"


LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
NAMED_FILE = re.compile(r"\b((?:benchmarks|examples|notebooks)/[\w./-]+\.(?:py|ipynb))\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_file_a_doc_links_or_runs_exists(doc):
    text = doc.read_text(encoding="utf-8")
    links = [link for link in LINK.findall(text) if "://" not in link]
    named = NAMED_FILE.findall(text)
    missing = [link for link in links if not (doc.parent / link).exists()]
    missing += [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


SCRIPTS = [script for doc in DOCS for script in scripts(doc)]


def _why_not_here(script: Script) -> str | None:
    """Why ``script`` does not run in this session, or None."""
    if "numpy" not in selected_backends():
        return "the snippets run on numpy: XPNN_BACKENDS leaves numpy out"
    if script.needs is None:
        return "runs in the numpy session (not again here)" if DISTRIBUTED else None
    if importlib.util.find_spec(script.needs.split(".")[0]) is None:
        return f"needs {script.needs}, not installed here"
    if script.needs in CLUSTER_MODULES and not DISTRIBUTED:
        return f"needs {script.needs}: runs in the distributed session (XPNN_DISTRIBUTED=1)"
    return None


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_python_block_runs_as_a_script(script, tmp_path):
    reason = _why_not_here(script)
    if reason is not None:
        pytest.skip(reason)
    result = run_script(script, tmp_path)  # a snippet that writes a file writes it here
    assert result.returncode == 0, f"{script.name}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


def test_few_blocks_are_left_unrun_and_each_says_why():
    unrun = [
        (doc.name, block.line, block.mark[1])
        for doc in DOCS
        for block in python_blocks(doc.read_text(encoding="utf-8"))
        if block.mark is not None and block.mark[0] == "not run"
    ]
    assert all(reason for _, _, reason in unrun), unrun
    assert len(unrun) <= 3, f"more snippets left unrun than a reader should meet: {unrun}"
