"""The hardened ``.npz`` reader: an archive's directory and every member's ``.npy`` header
are checked before anything is inflated or trusted, so a hostile file (a zip bomb, a
pickle, a member longer than its header says) costs no more memory than its own size.
Writes go through ``np.savez`` into an atomic file (``xpnn.io.atomic``). The archive is
NumPy's own format, so it lives here, beside the host side of the backends (``host``).

It knows nothing of models: ``xpnn.training.checkpoint`` gives the arrays their meaning.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.errors import CheckpointError, shown

MAX_MEMBERS = 1024
MAX_META_CHARS = 2**24  # 16 Mi characters: a history of 100,000+ readings fits many times
_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}\.npy")


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member as its header describes it."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]


def fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


def members(path: Path, archive: zipfile.ZipFile) -> dict[str, Member]:
    """Every member's name, header dtype and shape, after its directory entry and
    header are checked: no compression (a zip bomb needs it), no odd names, and a
    stored size that is exactly the header plus the data its shape and dtype need."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise fail(path, f"holds {len(infos)} members; a checkpoint has a few")
    if sum(i.compress_size for i in infos) > path.stat().st_size:
        raise fail(path, "its members claim more bytes than the file has; corrupt")
    members: dict[str, Member] = {}
    for info in infos:
        name = info.filename
        if not _NAME.fullmatch(name) or name[:-4] in members:
            raise fail(
                path, f"not an xpnn checkpoint: member {shown(name)} is not .npy, or repeated"
            )
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise fail(
                path,
                f"the member {name!r} is compressed or encrypted; xpnn writes plain "
                "(stored) archives and never inflates one",
            )
        with archive.open(info) as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f".npy format version {version}")
            start = file.tell()
        if dtype.hasobject:
            raise fail(
                path,
                f"the array {name[:-4]!r} is an object array (pickled Python objects); "
                "xpnn never loads pickles",
            )
        if dtype.kind not in "fU" or fortran:
            raise fail(
                path,
                f"the array {name[:-4]!r} has dtype {dtype} (fortran order {fortran}); "
                "xpnn stores float and text arrays only",
            )
        if info.file_size != start + math.prod(shape) * dtype.itemsize:
            raise fail(path, f"the member {name!r} is not as long as its header says")
        members[name[:-4]] = Member(info, dtype, tuple(shape))
    return members


def read_array(path: Path, archive: zipfile.ZipFile, member: Member) -> np.ndarray:
    """The member's array, read to its end so the CRC is checked."""
    with archive.open(member.info) as file:
        array = np.lib.format.read_array(file, allow_pickle=False)
        if file.read(1):
            raise fail(path, f"the member {member.info.filename!r} is longer than its array")
    return array


def read_text(path: Path, archive: zipfile.ZipFile, members: Mapping[str, Member], key: str) -> str:
    member = members.get(key)
    if member is None:
        raise fail(path, f"missing the array {key!r}; not an xpnn checkpoint or damaged")
    if member.shape != () or member.dtype.kind != "U":
        raise fail(path, f"{key!r} must be a 0-d unicode array, got {member.dtype} {member.shape}")
    if member.dtype.itemsize // 4 > MAX_META_CHARS:
        raise fail(path, f"{key!r} holds {member.dtype.itemsize // 4} characters; too many")
    return str(read_array(path, archive, member)[()])


def depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (walked without recursion)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest


def write(file: Any, contents: Mapping[str, Any]) -> None:
    """``contents`` (host arrays; a ``str`` becomes a 0-d unicode array) as an
    uncompressed ``.npz`` archive into the open binary ``file``."""
    np.savez(file, **contents)


def all_finite(array: Any) -> bool:
    """Whether every value of the host array ``array`` is finite."""
    return bool(np.isfinite(array).all())
