"""What a zip bomb costs ``xpnn.checkpoint.load``: wall time and peak memory growth.

A real checkpoint's ``param.W1`` member is replaced by 137,500,000 float64 zeros (1.1 GB)
deflated to about 1 MB. Each tree given (default: this one) loads it in a fresh process;
the table shows the outcome, the wall time and the growth of the peak resident set
(``resource.getrusage``). Compare an older checkout with ``--tree PATH``::

    python benchmarks/checkpoint_zip_bomb.py --tree . --tree /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N = 137_500_000  # 1.1 GB of float64

LOAD = """
import resource, sys, time
from xpnn.training.checkpoint import load
from xpnn.errors import XpnnError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
try:
    load(sys.argv[1])
    outcome = "loaded"
except XpnnError as exc:
    outcome = "refused: " + str(exc).split(": ", 1)[1][:60]
seconds = time.perf_counter() - began
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(f"{outcome}\\t{seconds:.3f}\\t{growth:.1f}")
"""


def make_bomb(path: Path) -> None:
    """A checkpoint of a small MLP whose ``param.W1`` member is the bomb."""
    sys.path.insert(0, str(ROOT))
    from xpnn.checkpoint import save

    import xpnn

    good = path.with_suffix(".good.npz")
    save(good, xpnn.MLP([3, 5, 2], seed=0))
    with zipfile.ZipFile(good) as z:
        members = {name: z.read(name) for name in z.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in members.items():
            if name != "param.W1.npy":
                z.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        with z.open("param.W1.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f8", "fortran_order": False, "shape": (N,)}
            np.lib.format.write_array_header_1_0(f, header)
            chunk, left = bytes(2**24), N * 8
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="xpnn source tree (repeat)")
    trees = parser.parse_args().tree or [ROOT]
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.npz"
        make_bomb(bomb)
        print(
            f"bomb: {bomb.stat().st_size / 2**20:.2f} MiB on disk, {N * 8 / 2**30:.2f} GiB inflated"
        )
        print(f"{'tree':40}  {'seconds':>8}  {'peak RSS growth (MiB)':>21}  outcome")
        for tree in trees:
            proc = subprocess.run(
                [sys.executable, "-c", LOAD, str(bomb)],
                capture_output=True,
                text=True,
                env={"PYTHONPATH": str(tree.resolve())},
                cwd=tmp,  # not the current folder, which `python -c` puts first on the path
                check=True,
            )
            outcome, seconds, growth = proc.stdout.strip().split("\t")
            print(f"{tree!s:40}  {seconds:>8}  {growth:>21}  {outcome}")


if __name__ == "__main__":
    main()
