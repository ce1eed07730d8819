"""Peak memory of the measuring process: the kernel's RSS high-water mark, reset before each measurement.

Workers are long-lived, so the process-wide high-water mark (ru_maxrss) would include earlier jobs.
On Linux, writing "5" to /proc/self/clear_refs resets VmHWM, so a job measures only its own peak.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current RSS; False where the OS cannot (then peaks are process-wide)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set since the last reset, in bytes."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
