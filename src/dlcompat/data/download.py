"""Checksummed download of the original dataset files, and the messages for files that are missing.

A file is streamed into a hidden temporary file in its target folder while its md5 / sha256 are
computed; only when they match the published values (and, where known, the sha256 of the
uncompressed content too) is it moved into place with ``os.replace``. A failed, interrupted or
mismatched download leaves nothing behind. Checking happens only here, on download; loading a file
that is already there does not hash it (loading stays fast).

Base URLs are tried in order. ``$DLCOMPAT_DATA_MIRROR`` replaces them all: with it set, a file is
fetched from ``<mirror>/<dataset>/<filename>`` (e.g. ``<mirror>/mnist/train-images-idx3-ubyte.gz``),
the same layout as a data folder, so any served copy of a data folder is a mirror.

Imports the standard library only (``urllib`` lazily, when a download actually starts).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dlcompat.data import _files
from dlcompat.errors import DataError

MIRROR_ENV = "DLCOMPAT_DATA_MIRROR"
TIMEOUT_S = 60.0
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name, default base URLs and published checksums of the file as served.

    ``content_check(path)`` optionally verifies the content further (for example the sha256 of the
    uncompressed data) and returns a problem in a few words, or None when the content is right.
    """

    filename: str
    base_urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    content_check: Callable[[Path], str | None] | None = None


class _Rejected(Exception):
    """A download arrived but is not the published file."""


def base_urls(dataset: str, defaults: Sequence[str]) -> list[str]:
    """The base URLs to try: ``$DLCOMPAT_DATA_MIRROR/<dataset>/`` alone when it is set, else ``defaults``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return [f"{mirror.rstrip('/')}/{dataset}/"]
    return [u if u.endswith("/") else u + "/" for u in defaults]


def missing_error(what: str, looked_in: list[Path], target: Path, why: str) -> DataError:
    """The one sentence for files that are not there: what, where we looked, and what to do."""
    return DataError(f"{what} not found in {_files.describe_dirs(looked_in)} and {why}: put the files in "
                     f"{target}, or pass --data-dir / set DLCOMPAT_DATA_DIR to a folder that holds them")


def fetch(dataset: str, remote: RemoteFile, target_dir: Path, *, what: str, looked_in: list[Path]) -> Path:
    """Download ``remote`` into ``target_dir`` (verified, atomically) and return its path.

    Raises `DataError` naming ``what`` was missing, where it was looked for (``looked_in``) and why
    each URL failed.
    """
    created = [d for d in (target_dir, *target_dir.parents) if not d.exists()]  # innermost first
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = f"the folder to download into cannot be created ({exc.strerror or exc})"
        raise missing_error(what, looked_in, target_dir, why) from exc
    import http.client

    dest = target_dir / remote.filename
    reasons: list[str] = []
    for base in base_urls(dataset, remote.base_urls):
        url = base + remote.filename
        try:
            with _files.atomic_path(dest) as tmp:
                log.info("downloading %s to %s", url, dest)
                md5, sha256 = _stream(url, tmp)
                if (remote.md5 and md5 != remote.md5) or (remote.sha256 and sha256 != remote.sha256):
                    raise _Rejected("its checksum does not match the published one, so it was not kept")
                problem = remote.content_check(tmp) if remote.content_check else None
                if problem:
                    raise _Rejected(f"{problem}, so it was not kept")
            return dest
        except _Rejected as exc:
            reasons.append(f"{url}: {exc}")
        except (OSError, http.client.HTTPException, ValueError) as exc:  # network, HTTP, bad URL, disk
            reasons.append(f"{url}: {_reason(exc)}")
        log.info("download failed: %s", reasons[-1])
    for folder in created:  # leave no empty folders behind either
        try:
            folder.rmdir()
        except OSError:
            break
    raise missing_error(what, looked_in, target_dir, f"could not be downloaded ({'; '.join(reasons)})")


def _stream(url: str, tmp: Path) -> tuple[str, str]:
    import urllib.request

    from dlcompat import __version__

    md5, sha = hashlib.md5(), hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": f"dlcompat/{__version__} (urllib)"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "xb") as fh:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            md5.update(chunk)
            sha.update(chunk)
            fh.write(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _reason(exc: BaseException) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
