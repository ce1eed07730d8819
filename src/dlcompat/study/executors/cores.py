"""CPU cores for jobs: each running job holds cores of its own, machine-wide, and its worker runs only on them.

A job's thread budget (`OMP_NUM_THREADS`, each framework's intra-op setting) bounds the threads that
compute, not the helpers around them: Chromium's renderer and GPU processes, TensorFlow's inter-op
and compiler threads, Python's own. Alone on a 2-core machine, a "one-thread" job used the second core
too; with another job beside it, the same jobs took 1.26x longer in total (browser jobs 1.73x,
TensorFlow converters 1.45x, training 1.75x). So its timings depended on what ran beside it, and
"one thread per job" was not true. Here the budget is enforced: a job claims `threads` cores, and
its worker process, every thread of it and every process it started (those started later inherit
the mask) run on those cores alone.

The claim is machine-wide, so executors, Ray nodes and drivers sharing one host never hand out the
same core twice: a core is held by an exclusive, non-blocking `flock` on its own file in a per-user
folder of the temp directory, and the kernel releases it when its holder exits, however it exits.
When fewer cores are free than a job asks for (more slots than cores), the job runs on every core,
as before, and its environment record says so (`cpu_affinity`). `DLCOMPAT_PIN_CORES=0` turns
pinning off. Linux only (`os.sched_setaffinity`); elsewhere jobs run unpinned.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

#: set to 0 to let every job run on every core
PIN_VARIABLE = "DLCOMPAT_PIN_CORES"


def pinning_enabled() -> bool:
    return hasattr(os, "sched_setaffinity") and os.environ.get(PIN_VARIABLE, "1") != "0"


def lock_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"dlcompat-cores-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def available_cores() -> list[int]:
    """The cores this process may run on (its affinity mask), in order."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


@contextlib.contextmanager
def claim_cores(count: int) -> Iterator[frozenset[int] | None]:
    """Hold `count` free cores for the duration of the block: their ids, or None (none held: run unpinned)."""
    if count < 1 or not pinning_enabled() or count >= len(available_cores()):
        yield None  # pinning to every core is no pinning; 0 or more cores than there are cannot be claimed
        return
    held: list[tuple[int, int]] = []  # (core, fd)
    try:
        # no lock folder here (a read-only temp directory): the job runs unpinned rather than failing
        with contextlib.suppress(OSError):
            folder = lock_dir()
            for core in available_cores():
                fd = os.open(folder / f"cpu{core}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                held.append((core, fd))
                if len(held) == count:
                    break
        yield frozenset(core for core, _ in held) if len(held) == count else None
    finally:
        for _, fd in held:
            os.close(fd)  # closing the last descriptor releases the lock


def pin_process_tree(pid: int, cores: frozenset[int] | None) -> int:
    """Run process `pid`, every thread of it and every process below it on `cores` (None: on every core).

    Returns the number of threads whose mask was set. Threads and processes that end meanwhile are skipped.
    """
    if not hasattr(os, "sched_setaffinity"):
        return 0
    mask = set(cores) if cores else set(available_cores())
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    pinned = 0
    for process in processes:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{process.pid}/task")]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)
                pinned += 1
    return pinned
