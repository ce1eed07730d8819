"""Size of a model artifact on disk: the file, or every file of a model folder."""

from __future__ import annotations

from pathlib import Path


def artifact_size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
