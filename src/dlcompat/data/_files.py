"""Private file helpers shared by the loaders: where to look, how to read, how to write atomically."""

from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from dlcompat.data.archives import MAX_UNPACKED_BYTES
from dlcompat.errors import DataError

T = TypeVar("T")

ENV_DATA_DIR = "DLCOMPAT_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/dlcompat/data")


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data folder: the explicit argument, else ``$DLCOMPAT_DATA_DIR``, else ``~/.cache/dlcompat/data``.

    Nothing is created here; a download creates the folder it writes into.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR, "")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR.expanduser()


def candidate_dirs(data_dir: Path, name: str) -> list[Path]:
    """Where a dataset's files may sit: ``<data_dir>/<name>/`` first, then ``<data_dir>/`` itself."""
    return [data_dir / name, data_dir]


def describe_dirs(dirs: list[Path]) -> str:
    return " or ".join(str(d) for d in dirs)


def find_file(folder: Path, filename: str) -> Path | None:
    """``folder/filename`` in either form: ``filename`` may name the ``.gz`` file or the uncompressed one.

    The gzipped form is preferred when both are there (it is the form that is downloaded and verified).
    """
    base = filename[:-3] if filename.endswith(".gz") else filename
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    return None


def corrupt(path: Path | str, detail: str = "") -> DataError:
    why = f" ({detail})" if detail else ""
    return DataError(f"file {path} is corrupt or truncated{why}: delete it so it is downloaded again, "
                     "or replace it")


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when its name ends in ``.gz``; a broken file is a `DataError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}): check that it exists and is "
                         "readable, or pass another --data-dir") from exc
    if path.name.endswith(".gz"):
        return gunzip(raw, path)
    return raw


def gunzip(raw: bytes, path: Path | str, limit: int = MAX_UNPACKED_BYTES) -> bytes:
    """Decompress a gzip file's bytes, every member (CRC and length checked); a broken stream, or one that would
    unpack to more than `limit` bytes (a gzip bomb: it is stopped there, not unpacked), is a `DataError`."""
    pieces: list[bytes] = []
    size, rest = 0, raw
    try:
        while True:
            stream = zlib.decompressobj(wbits=31)  # one gzip member: zlib directly, faster than gzip.decompress
            pieces.append(stream.decompress(rest, limit + 1 - size))
            size += len(pieces[-1])
            if size > limit:
                raise DataError(f"file {path} unpacks to more than {limit / (1 << 30):.3g} GiB, the most "
                                "dlcompat unpacks from one file: it is not a dataset file, replace it")
            if not stream.eof:
                raise corrupt(path, "gzip: the compressed stream ends early")
            rest = stream.unused_data
            if not rest.strip(b"\0"):
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    except (OSError, EOFError, zlib.error) as exc:
        raise corrupt(path, f"gzip: {exc}") from exc


def locate(dirs: list[Path], probe: Callable[[Path], T | None]) -> T | None:
    """The first non-None ``probe(folder)`` over ``dirs`` (each folder once), else None."""
    seen: set[Path] = set()
    for folder in dirs:
        key = folder.resolve() if folder.exists() else folder
        if key in seen or not folder.is_dir():
            continue
        seen.add(key)
        found = probe(folder)
        if found is not None:
            return found
    return None


def temp_path_for(target: Path) -> Path:
    """A fresh, hidden name beside ``target`` for writing it atomically (same folder, so os.replace works)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it (os.replace) only if the block succeeds.

    The caller creates and fills the temporary file (open it with mode ``"xb"``, so it gets the normal
    umask permissions) and may verify it inside the block; on any exception, or if the block raises, the
    temporary file is removed and ``target`` is left as it was.
    """
    tmp = temp_path_for(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
