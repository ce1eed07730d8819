"""An output folder that fills up, or is read-only: the study stops with one sentence (exit 2), keeps nothing
half-written, and the same `dlcompat run` completes once space is back, with the figures of an uninterrupted run.

The artifact folder is a real tmpfs of its own (we mount it; the test is skipped where mounting is not allowed),
filled by a ballast file so that a few artifacts fit and the next write fails with a real ENOSPC; for the
read-only case it is remounted read-only, so every write fails with a real EROFS.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlcompat.cli import main
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url

TINY = """
name = "tiny-disk"
models = ["lenet1"]
frameworks = ["pytorch"]
migration = []
runtimes = ["onnxruntime"]
check_reproducibility = false
[converters]
"torch.onnx" = ["torchscript"]
[data]
limit_train = 200
limit_test = 50
[train]
epochs = 1
[latency]
warmup = 1
warmup_time_s = 0.0
min_repeats = 3
min_time_s = 0.0
max_time_s = 0.2
[attacks]
methods = []
"""
#: figures that measure time or memory differ between two runs; every other figure must be identical
VARYING = ("latency", "time", "rss", "first_inference")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """`out/artifacts` as a 4 MiB tmpfs of its own."""
    folder = tmp_path / "out" / "artifacts"
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _run(config: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["run", str(config), "--out", str(out), "--executor", "inline", "--jobs", "1", "--quiet"])
    return int(done.value.code or 0), capsys.readouterr().err


def _figures(out: Path) -> dict[tuple[str, ...], float | None]:
    store = ResultStore(database_url(out))
    run = store.run("latest")
    assert run["status"] == "complete"
    return {(r["kind"], r["metric"], r["target"], r["variant"]): r["value"] for r in store.rows(run["id"])
            if not any(word in r["metric"] for word in VARYING)}


def _assert_nothing_half_written(out: Path) -> int:
    """No temp file left, every stored job ok, every artifact it names whole; returns how many jobs are stored."""
    artifacts = out / "artifacts"
    assert list((artifacts / "tmp").iterdir()) == []
    store = ArtifactStore(artifacts)
    with sqlite3.connect(out / "results.sqlite") as conn:
        statuses = [s for (s,) in conn.execute("select status from jobs")]
        named = [a for (a,) in conn.execute("select artifact from measurements where artifact != ''")]
        runs = conn.execute("select status from runs").fetchall()
    assert set(statuses) <= {"ok"}, "a failed write became a finding"
    assert runs == [("interrupted",)]
    assert all(store.verify(a) for a in named)
    assert all(store.verify(p.relative_to(artifacts).as_posix())
               for p in (artifacts / "objects").rglob("*") if p.is_file())
    return len(statuses)


def _fill(folder: Path, leave: int) -> Path:
    stat = os.statvfs(folder)
    ballast = folder / "ballast"
    ballast.write_bytes(bytes(max(0, stat.f_bavail * stat.f_frsize - leave)))
    return ballast


@pytest.mark.slow
def test_disk_full_stops_in_one_sentence_and_resumes_to_the_same_figures(tmp_path, tmpfs, capsys):
    config = tmp_path / "study.toml"
    config.write_text(TINY)
    code, _ = _run(config, tmp_path / "reference", capsys)
    assert code == 0
    reference = _figures(tmp_path / "reference")

    out = tmpfs.parent
    ballast = _fill(tmpfs, 200 << 10)  # room for the dataset and the weights, not for everything after them
    code, err = _run(config, out, capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "is full (No space left on device)" in lines[0] and str(tmpfs) in lines[0], err
    stored = _assert_nothing_half_written(out)
    assert stored >= 1

    ballast.unlink()  # space is back
    code, err = _run(config, out, capsys)
    assert code == 0, err
    assert _figures(out) == reference
    run = ResultStore(database_url(out)).run("latest")
    assert run["summary"]["cached"] == stored and run["summary"]["failed"] == 0


@pytest.mark.slow
def test_read_only_output_folder_stops_in_one_sentence_and_resumes(tmp_path, tmpfs, capsys):
    config = tmp_path / "study.toml"
    config.write_text(TINY)
    out = tmpfs.parent
    ArtifactStore(tmpfs)  # the folder as a first run leaves it, then made read-only
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code, err = _run(config, out, capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "is read-only" in lines[0], err
    assert _assert_nothing_half_written(out) == 0

    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    code, err = _run(config, out, capsys)
    assert code == 0, err
    assert ResultStore(database_url(out)).run("latest")["summary"]["failed"] == 0
