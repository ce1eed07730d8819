"""Refuse archives that would unpack past a stated size (zip bombs) before any reader touches them.

A ``.keras``, ``.pt``/``.pth`` (PyTorch's zip format) or ``.npz`` file is a zip archive, and its readers
unpack members into memory. `check_zip` reads only the central directory: it refuses an archive whose
members claim more than `MAX_UNPACKED_BYTES` (2 GiB) unpacked in all, and an ``.npy`` member whose header
announces more bytes than the member holds (NumPy would allocate the announced array first). Python's
``zipfile`` never inflates a member past the size the directory claims, so the claim bounds the work.

Standard library and NumPy only: it runs in every toolchain environment.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

#: the most bytes dlcompat unpacks from one model or data archive (the largest zoo model is far below it)
MAX_UNPACKED_BYTES = 2 << 30


class ArchiveTooLarge(ValueError):
    """An archive whose members unpack (or claim to) past `MAX_UNPACKED_BYTES`, or an ``.npy`` member whose
    header announces more than the member holds."""


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def check_zip(path: str | os.PathLike[str], limit: int = MAX_UNPACKED_BYTES) -> None:
    """Raise `ArchiveTooLarge` if the zip at `path` would unpack past `limit`; a file that is not a zip
    (or not readable) passes here and is judged by its own reader."""
    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            return
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        return
    with archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise ArchiveTooLarge(f"its {len(infos)} members unpack to {_gib(total)}, over the "
                                  f"{_gib(limit)} dlcompat unpacks from one archive")
        for info in infos:
            if info.filename.endswith(".npy"):
                _check_npy_member(archive, info)


def _check_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """An ``.npy`` member's header must not announce more array bytes than the member holds."""
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _fortran, dtype = read_header(handle)
    if dtype.hasobject:
        return  # pickled objects: every loader refuses them (allow_pickle=False)
    announced = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if announced > info.file_size:
        raise ArchiveTooLarge(f"member {info.filename} announces a {dtype} array of shape {tuple(shape)} "
                              f"({_gib(announced)}) in {info.file_size} bytes")
