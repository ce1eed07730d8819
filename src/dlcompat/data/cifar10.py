"""CIFAR-10, binary version, from its original files (never the pickled "python version").

Accepted forms, looked for in ``<data_dir>/cifar10/`` and then ``<data_dir>/`` (the first complete one
wins, in this order):

1. the extracted ``cifar-10-batches-bin/`` folder;
2. the ``.bin`` batches directly in the folder;
3. the original ``cifar-10-binary.tar.gz`` (read in one streaming pass, nothing is extracted).

In forms 1 and 2 each batch may also be gzipped (``data_batch_1.bin.gz``). The batches are
``data_batch_1.bin`` ... ``data_batch_5.bin`` (train, in that order) and ``test_batch.bin``; each
record is 3,073 bytes: a label byte, then 1,024 red, 1,024 green and 1,024 blue bytes, each plane a
row-major 32x32 image. ``batches.meta.txt`` (class names, one a line) is read when present.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlcompat.data import _files
from dlcompat.data.archives import MAX_UNPACKED_BYTES
from dlcompat.data.download import RemoteFile, fetch, missing_error
from dlcompat.data.registry import SourceArrays, register_dataset

NAME = "cifar10"
TARBALL = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
META = "batches.meta.txt"
RECORD_BYTES = 1 + 3 * 32 * 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

URLS = ("https://www.cs.toronto.edu/~kriz/",)
TARBALL_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
# sha256 of the uncompressed batches (checked on download only).
BATCH_SHA256 = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}

_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


@dataclass(frozen=True)
class _Found:
    tarball: Path | None = None
    batches: dict[str, Path] = field(default_factory=dict)
    meta: Path | None = None


@register_dataset(
    NAME,
    input_shape=(32, 32, 3),
    class_names=CLASSES,
    description="CIFAR-10 (binary version): 50,000 train and 10,000 test 32x32 colour images, 10 classes",
    citation="A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, Technical Report, "
             "University of Toronto, 2009",
    downloadable=True,
    aliases=("cifar-10", "cifar_10"),
)
def load_cifar10(data_dir: Path, download: bool) -> SourceArrays:
    found = _locate(data_dir, download)
    if found.tarball is not None:
        batches, meta = _read_tarball(found.tarball)
        where = f"{found.tarball}"
    else:
        # Decompress the batches in threads: zlib releases the GIL.
        with ThreadPoolExecutor(max_workers=min(len(BATCHES), os.cpu_count() or 1)) as pool:
            parsed = pool.map(lambda p: parse_batch(_files.read_bytes(p), p), found.batches.values())
            batches = dict(zip(found.batches, parsed, strict=True))
        meta = _files.read_bytes(found.meta) if found.meta is not None else None
        where = f"{found.batches[TEST_BATCH].parent}"
    names = parse_meta(meta, found.meta or found.tarball) if meta is not None else CLASSES
    train_x = np.concatenate([batches[b][0] for b in TRAIN_BATCHES])
    train_y = np.concatenate([batches[b][1] for b in TRAIN_BATCHES])
    test_x, test_y = batches[TEST_BATCH]
    return SourceArrays(train_x, train_y, test_x, test_y, names,
                        source=f"CIFAR-10 binary version: {where}")


def parse_batch(data: bytes, where: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """One batch's (images NHWC uint8, labels int64); a wrong size or label is a `DataError`."""
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise _files.corrupt(where, f"{len(data)} bytes is not a whole number of {RECORD_BYTES}-byte records")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if int(labels.max()) > 9:
        raise _files.corrupt(where, f"label {int(labels.max())} outside 0..9")
    images = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def parse_meta(data: bytes, where: Path | str | None) -> tuple[str, ...]:
    names = tuple(line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip())
    if len(names) != 10:
        raise _files.corrupt(where or META, f"{len(names)} class names in {META}, expected 10")
    return names


def _read_tarball(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], bytes | None]:
    """Parse the batches of the original tarball in one streaming pass (members matched by base name)."""
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    meta: bytes | None = None
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or (base not in BATCHES and base != META) or base in batches:
                    continue
                if member.size > MAX_UNPACKED_BYTES:  # read nothing of a member claiming gigabytes
                    raise _files.corrupt(path, f"member {member.name} claims {member.size} bytes, more than "
                                               f"{MAX_UNPACKED_BYTES} (2 GiB)")
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                if base == META:
                    meta = data
                else:
                    batches[base] = parse_batch(data, f"{path} (member {member.name})")
    except _TAR_ERRORS as exc:
        raise _files.corrupt(path, str(exc) or type(exc).__name__) from exc
    missing = [b for b in BATCHES if b not in batches]
    if missing:
        raise _files.corrupt(path, f"it lacks {', '.join(missing)}")
    return batches, meta


def _probe(folder: Path) -> _Found | None:
    for place in (folder / FOLDER, folder):
        if place.is_dir():
            batches = {b: _files.find_file(place, b) for b in BATCHES}
            if all(batches.values()):
                return _Found(batches=batches, meta=_files.find_file(place, META))  # type: ignore[arg-type]
    if (folder / TARBALL).is_file():
        return _Found(tarball=folder / TARBALL)
    return None


def _locate(data_dir: Path, download: bool) -> _Found:
    dirs = _files.candidate_dirs(data_dir, NAME)
    found = _files.locate(dirs, _probe)
    if found is not None:
        return found
    target = dirs[0]
    what = (f"the CIFAR-10 binary files ({TARBALL}, or its {FOLDER}/ folder, or data_batch_1..5.bin and "
            "test_batch.bin, gzipped or not) were")
    if not download:
        raise missing_error(what, dirs, target, "downloading is turned off")
    fetch(NAME, RemoteFile(TARBALL, URLS, md5=TARBALL_MD5, content_check=check_tarball_content), target,
          what=what, looked_in=dirs)
    return _Found(tarball=target / TARBALL)


def check_tarball_content(path: Path) -> str | None:
    """Problem with a downloaded tarball's batches (sha256 of each against the published values), or None."""
    seen: dict[str, str] = {}
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in BATCH_SHA256:
                    handle = archive.extractfile(member)
                    digest = hashlib.sha256()
                    if handle is not None:
                        for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                            digest.update(chunk)
                    seen[base] = digest.hexdigest()
    except _TAR_ERRORS:
        return "it is not a readable tar.gz archive"
    if seen != BATCH_SHA256:
        return "its batches do not match the published checksums"
    return None
