"""Execute the course notebooks top to bottom with nbclient; ``nox -s notebooks`` runs it.

    python tests/run_notebooks.py [notebooks/3_binary_addition.ipynb ...]

With no arguments it runs every ``notebooks/*.ipynb``, each in a fresh kernel of this
Python (ipykernel's ``python3`` kernel spec), and prints the seconds each took. A cell
that raises stops that notebook: the notebook, the cell's number and first line, and the
error are printed, the other notebooks still run, and the exit status is 1. Nothing is
written back: the committed notebooks stay without outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds; every notebook takes well under a minute in all


def check_kernel() -> None:
    """Stop unless the ``python3`` kernel runs this Python, so the notebooks see the
    packages of this environment (a ``python3`` kernel spec in the user's Jupyter folder
    would shadow ipykernel's own)."""
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    program = spec.argv[0]
    # jupyter_client starts sys.executable for these names
    major, minor = sys.version_info[:2]
    if program in ("python", f"python{major}", f"python{major}.{minor}"):
        program = sys.executable
    if os.path.abspath(program) != os.path.abspath(sys.executable):
        sys.exit(
            f"the {KERNEL!r} kernel runs {program}, not this Python ({sys.executable}); "
            f"its spec is in {spec.resource_dir}"
        )


def run(path: Path) -> str | None:
    """Execute one notebook in a fresh kernel; None on success, else what failed."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(path.parent)}},  # the kernel's working folder
        # a kernel on this machine's loopback: not its warning that TCP is unencrypted
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        failed = [
            (number, cell)
            for number, cell in enumerate(nb.cells, start=1)
            if cell.cell_type == "code"
            and any(out.get("output_type") == "error" for out in cell.get("outputs", []))
        ]
        where = "a cell"
        if failed:
            number, cell = failed[0]
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            where = f"cell {number} of {len(nb.cells)} ({first!r})"
        elif isinstance(exc, CellTimeoutError):
            where = f"a cell (over {CELL_TIMEOUT} s)"
        return f"{where}:\n{exc}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    paths = parser.parse_args().notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        sys.exit(f"no notebooks in {ROOT / 'notebooks'}")
    check_kernel()
    failures, total = [], 0.0
    for path in paths:
        began = time.perf_counter()
        error = run(path)
        seconds = time.perf_counter() - began
        total += seconds
        print(f"{path.name}: {'ok' if error is None else 'FAILED'} in {seconds:.1f} s", flush=True)
        if error is not None:
            failures.append(path.name)
            print(f"{path.name} failed at {error}", file=sys.stderr, flush=True)
    print(f"{len(paths) - len(failures)} of {len(paths)} notebooks ran in {total:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
