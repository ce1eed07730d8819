"""Content-addressed artifact store: a file's path is the sha256 of its bytes, and every write is atomic.

Layout under the root: ``objects/ab/<sha256[2:]><suffix>`` for finished artifacts, ``tmp/`` for writes in
progress. A writer fills a temp file, hashes it, and `os.replace`s it into place, so a reader (or a
study killed with SIGKILL) never sees a half-written artifact; a crash leaves at most a stray temp file,
which `clean_tmp` removes. Paths handed around are relative to the root (``objects/ab/...``), so a
results database stays valid when the whole output folder is moved.

Imports only the standard library and NumPy: workers in every toolchain environment use it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """Absolute path of an artifact named by its relative path."""
        return self.root / relative

    @contextmanager
    def writing(self, suffix: str = "") -> Iterator[Path]:
        """A temp path to write to; on leaving the block it is hashed and moved into place.

        Use `put_file` on the yielded path's final name: `with store.writing(".onnx") as tmp: ...`
        then `store.put_file(tmp, ".onnx")`. The temp folder is cleaned whatever happens.
        """
        tmpdir = Path(tempfile.mkdtemp(dir=self.root / "tmp"))
        try:
            yield tmpdir / f"artifact{suffix}"
        finally:
            for child in tmpdir.iterdir():
                child.unlink()
            tmpdir.rmdir()

    def put_file(self, source: Path, suffix: str = "") -> str:
        """Move `source` into the store under its hash; return its relative path."""
        digest = sha256_file(source)
        relative = f"objects/{digest[:2]}/{digest[2:]}{suffix}"
        target = self.root / relative
        if target.exists():
            source.unlink(missing_ok=True)
            return relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(source, target)  # atomic: same file system (tmp/ lives under the root)
        except OSError:  # another file system: stage a copy beside the target first
            staging = self.root / "tmp" / f"{digest}.{os.getpid()}.part"
            shutil.copyfile(source, staging)
            os.replace(staging, target)
            source.unlink(missing_ok=True)
        return relative

    def put_bytes(self, data: bytes, suffix: str = "") -> str:
        digest = hashlib.sha256(data).hexdigest()
        relative = f"objects/{digest[:2]}/{digest[2:]}{suffix}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = self.root / "tmp" / f"{digest}.{os.getpid()}.part"
            with open(staging, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(staging, target)
        return relative

    def put_array(self, array: np.ndarray) -> str:
        """Store one array as `.npy` (readable with NumPy alone, no pickle)."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        return self.put_bytes(buffer.getvalue(), ".npy")

    def get_array(self, relative: str) -> np.ndarray:
        return np.load(self.path(relative), allow_pickle=False)

    def verify(self, relative: str) -> bool:
        """True when the artifact's bytes still hash to its name."""
        path = self.path(relative)
        name = path.name.split(".", 1)[0]
        return path.exists() and sha256_file(path) == path.parent.name + name

    def clean_tmp(self) -> int:
        """Remove what interrupted writers left in tmp/; returns how many entries went."""
        removed = 0
        for entry in (self.root / "tmp").iterdir():
            if entry.is_dir():
                for child in entry.iterdir():
                    child.unlink()
                entry.rmdir()
            else:
                entry.unlink()
            removed += 1
        return removed
