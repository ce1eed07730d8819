"""Content-addressed artifact store: a file's path is the sha256 of its bytes, and every write is atomic.

Layout under the root: ``objects/ab/<sha256[2:]><suffix>`` for finished artifacts, ``tmp/`` for writes in
progress. A writer fills a temp file, hashes it, and `os.replace`s it into place, so a reader (or a
study killed with SIGKILL) never sees a half-written artifact; a crash leaves at most a stray temp file,
which `clean_tmp` removes. Paths handed around are relative to the root (``objects/ab/...``), so a
results database stays valid when the whole output folder is moved.

The root may also be an fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``file:///shared/mount``,
``memory://…``): the storage every node of a cluster can reach. Then a node keeps a local cache laid
out like a local store (``$DLCOMPAT_ARTIFACT_CACHE``, else ``~/.cache/dlcompat/artifact-cache``, one
folder per root): a job writes into the cache as before, and each finished artifact is uploaded to
``<root>/tmp/<name>.part`` and then moved to ``<root>/objects/…``, so the shared store never shows a
half-written object (a single PUT or server-side copy on object stores, a rename on file systems).
A reader asking for an artifact's path gets the cached copy, downloaded (and checked against its
hash) the first time. Workers of toolchain environments without fsspec never see the URL: the
executor fetches a job's inputs into the cache, runs the job on the cache as a plain folder, and
publishes the artifacts its outcome names (`artifact_refs`, `fetch`, `publish`).

Imports only the standard library and NumPy (fsspec only for a URL root): workers in every toolchain
environment use it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError, OutputError, one_line

_CHUNK = 1 << 20
#: temp entries younger than this are left alone by `clean_tmp` on shared roots and caches (a writer may own them)
STALE_TMP_S = 3600.0
#: the errors that mean the output folder cannot take a write at all: disk full, quota spent, read-only
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
#: a write that fails while less than this is free is taken as the disk being full, whatever the writer raised
#: (a framework's own writer may wrap ENOSPC in an exception of its own)
LOW_SPACE_BYTES = 1 << 20


def output_errno(exc: BaseException | None) -> int | None:
    """The ENOSPC, EDQUOT or EROFS behind `exc` (itself, or an exception it was raised from), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def output_error(folder: Path, code: int) -> OutputError:
    """The one sentence for an output folder that cannot take a write (an `OutputError`)."""
    what = "is read-only" if code == errno.EROFS else f"is full ({os.strerror(code)})"
    return OutputError(f"the output folder {folder} {what}: nothing half-written was kept; free space or make it "
                       "writable (or choose another --out), then run the same command again to resume")


def full_or_read_only(folder: Path) -> int | None:
    """ENOSPC when `folder`'s file system has less than `LOW_SPACE_BYTES` free, EROFS when it is mounted
    read-only, else None."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return errno.EROFS
    return errno.ENOSPC if stat.f_bavail * stat.f_frsize < LOW_SPACE_BYTES else None


#: how an artifact is named wherever results point at one: objects/<2 hex>/<62 hex><suffix>
ARTIFACT_PATH = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{62}(\.[A-Za-z0-9._-]+)?$")


def artifact_refs(data: object) -> set[str]:
    """Every artifact path named anywhere in nested dicts, lists and strings (a job's inputs or outcome)."""
    found: set[str] = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if ARTIFACT_PATH.match(item):
                found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return found


def is_url(root: str | Path) -> bool:
    """True for an fsspec URL (``scheme://…``), False for a plain folder."""
    return "://" in str(root)


def default_cache(location: str) -> Path:
    """This machine's cache folder for the artifacts of the shared root `location`."""
    base = Path(os.environ.get("DLCOMPAT_ARTIFACT_CACHE", Path.home() / ".cache" / "dlcompat" / "artifact-cache"))
    return base / hashlib.sha256(location.encode()).hexdigest()[:16]


class RemoteRoot:
    """The shared side of a URL root: upload under a temp name and move into place; download whole."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError as exc:  # a toolchain environment without fsspec cannot use a URL root
            raise RuntimeError(f"artifact root {url} is a URL, which needs fsspec in this environment "
                               "(pip install fsspec, plus s3fs or gcsfs for those schemes)") from exc
        self.url = url
        self.fs: Any
        self.fs, self.base = fsspec.core.url_to_fs(url)
        self.base = self.base.rstrip("/")

    def full(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.full(relative)))

    def upload(self, local: Path, relative: str) -> None:
        """Publish `local` as `relative` atomically: nothing appears under objects/ until it is whole."""
        target = self.full(relative)
        if self.fs.exists(target):
            return
        part = self.full(f"tmp/{local.name}.{time.time_ns()}.{uuid.uuid4().hex[:8]}.part")
        self.fs.makedirs(posixpath.dirname(part), exist_ok=True)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        self.fs.put_file(str(local), part)
        self.fs.mv(part, target)

    def download(self, relative: str, staging: Path) -> None:
        self.fs.get_file(self.full(relative), str(staging))

    def sha256(self, relative: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(self.full(relative), "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
        return digest.hexdigest()

    def clean_tmp(self, older_than_s: float) -> int:
        """Remove interrupted uploads (their names carry the time they started) older than `older_than_s`."""
        folder = self.full("tmp")
        if not self.fs.exists(folder):
            return 0
        removed, cutoff = 0, time.time_ns() - older_than_s * 1e9
        for entry in self.fs.ls(folder, detail=False):
            parts = posixpath.basename(entry).split(".")
            started = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else 0
            if started <= cutoff:
                self.fs.rm(entry, recursive=True)
                removed += 1
        return removed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """`root` is a folder or an fsspec URL; `location` is what to hand to another process or node (a folder's
    absolute path: a Ray worker does not share the driver's working directory)."""

    def __init__(self, root: str | Path, cache: str | Path | None = None) -> None:
        self.remote: RemoteRoot | None = None
        if is_url(root):
            self.location = str(root)
            self.remote = RemoteRoot(self.location)
            self.root = Path(cache) if cache else default_cache(self.location)  # this machine's cache
        else:
            self.root = Path(root)
            self.location = str(self.root.absolute())
        with self._output_guard():
            (self.root / "objects").mkdir(parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _output_guard(self, *partial: Path) -> Iterator[None]:
        """Turn a write that failed because the output folder is full or read-only into one `OutputError`
        sentence, after removing the `partial` files it left; any other failure passes through unchanged."""
        try:
            yield
        except Exception as exc:
            if isinstance(exc, OutputError):  # already the sentence (a write inside `writing`)
                raise
            code = output_errno(exc) or full_or_read_only(self.root if self.root.exists() else self.root.parent)
            for path in partial:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            if code is None:
                raise
            raise output_error(self.root, code) from exc

    def path(self, relative: str) -> Path:
        """Local path of an artifact named by its relative path (downloaded first from a URL root)."""
        local = self.root / relative
        if self.remote is not None and not local.exists():
            self._download(relative, local)
        return local

    def _download(self, relative: str, local: Path) -> None:
        assert self.remote is not None
        if not self.remote.exists(relative):
            raise FileNotFoundError(f"artifact {relative} is not in {self.location}")
        local.parent.mkdir(parents=True, exist_ok=True)
        staging = self.root / "tmp" / f"{local.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
        try:
            self.remote.download(relative, staging)
            digest = sha256_file(staging)
            if local.parent.name + local.name.split(".", 1)[0] != digest:
                raise OSError(f"artifact {relative} downloaded from {self.location} does not match its hash")
            os.replace(staging, local)
        finally:
            staging.unlink(missing_ok=True)

    def _publish(self, relative: str) -> str:
        if self.remote is not None:
            self.remote.upload(self.root / relative, relative)
        return relative

    def fetch(self, relatives: set[str]) -> None:
        """Have these artifacts in the local folder (downloaded from a URL root where missing)."""
        for relative in sorted(relatives):
            self.path(relative)

    def publish(self, relatives: set[str]) -> None:
        """Upload to a URL root those of these artifacts that were written here (no-op for a folder)."""
        for relative in sorted(relatives):
            if self.remote is not None and (self.root / relative).exists():
                self._publish(relative)

    @contextmanager
    def writing(self, suffix: str = "") -> Iterator[Path]:
        """A temp path to write to; on leaving the block it is hashed and moved into place.

        Use `put_file` on the yielded path's final name: `with store.writing(".onnx") as tmp: ...`
        then `store.put_file(tmp, ".onnx")`. The temp folder is cleaned whatever happens.
        """
        with self._output_guard():
            tmpdir = Path(tempfile.mkdtemp(dir=self.root / "tmp"))
        try:
            with self._output_guard(*(tmpdir / f"artifact{suffix}",)):
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
            return self._publish(relative)
        staging = self.root / "tmp" / f"{digest}.{os.getpid()}.part"
        with self._output_guard(staging):
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.replace(source, target)  # atomic: same file system (tmp/ lives under the root)
            except OSError as exc:  # another file system: stage a copy beside the target first
                if output_errno(exc):
                    raise
                shutil.copyfile(source, staging)
                os.replace(staging, target)
                source.unlink(missing_ok=True)
        return self._publish(relative)

    def put_bytes(self, data: bytes, suffix: str = "") -> str:
        digest = hashlib.sha256(data).hexdigest()
        relative = f"objects/{digest[:2]}/{digest[2:]}{suffix}"
        target = self.root / relative
        if not target.exists():
            staging = self.root / "tmp" / f"{digest}.{os.getpid()}.part"
            with self._output_guard(staging):
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(staging, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(staging, target)
        return self._publish(relative)

    def put_array(self, array: np.ndarray) -> str:
        """Store one array as `.npy` (readable with NumPy alone, no pickle)."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        return self.put_bytes(buffer.getvalue(), ".npy")

    def get_array(self, relative: str) -> np.ndarray:
        """An `.npy` artifact's array; one that is corrupt or holds pickled objects is a `ModelFileError`."""
        try:
            return np.load(self.path(relative), allow_pickle=False)
        except (ValueError, EOFError) as exc:  # NumPy's words for a pickled, truncated or foreign file
            raise ModelFileError(f"artifact {relative} is not a plain NumPy array ({type(exc).__name__}: "
                                 f"{one_line(exc)}): run the job that wrote it again") from exc

    def verify(self, relative: str) -> bool:
        """True when the artifact's bytes still hash to its name (on the shared root, for a URL root)."""
        path = self.root / relative
        name = path.parent.name + path.name.split(".", 1)[0]
        if self.remote is not None:
            return self.remote.exists(relative) and self.remote.sha256(relative) == name
        return path.exists() and sha256_file(path) == name

    def clean_tmp(self) -> int:
        """Remove what interrupted writers left in tmp/; returns how many entries went.

        A plain folder belongs to one study, so everything goes. A URL root and its cache are shared by
        every node (and maybe several studies), so only entries older than `STALE_TMP_S` go there.
        """
        if self.remote is not None:
            return self.remote.clean_tmp(STALE_TMP_S) + self._clean_local_tmp(STALE_TMP_S)
        return self._clean_local_tmp(0.0)

    def _clean_local_tmp(self, older_than_s: float) -> int:
        removed, cutoff = 0, time.time() - older_than_s
        for entry in (self.root / "tmp").iterdir():
            try:
                if older_than_s and entry.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if entry.is_dir():
                for child in entry.iterdir():
                    child.unlink()
                entry.rmdir()
            else:
                entry.unlink()
            removed += 1
        return removed
