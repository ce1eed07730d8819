"""Latency of a zero-argument call, as a statistic with its method recorded (MLPerf LoadGen's habit).

The caller prepares inputs before the clock starts (a runtime's `predictor`); only the call is timed,
with `time.perf_counter_ns`, and nothing else runs inside the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyMethod:
    warmup: int = 10
    min_repeats: int = 50
    min_time_s: float = 0.2
    max_time_s: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LatencyStats:
    """Per-call times in milliseconds."""

    p10: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    repeats: int
    first_call_ms: float
    converged: bool  # reached both min_repeats and min_time_s before max_time_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency(call: Callable[[], Any], method: LatencyMethod = LatencyMethod()) -> LatencyStats:
    """Time `call`: one first call (reported apart), `warmup` calls, then repeat to the method's bounds."""
    clock = time.perf_counter_ns
    start = clock()
    call()
    first = (clock() - start) / 1e6
    for _ in range(method.warmup):
        call()
    samples: list[int] = []
    deadline = clock() + int(method.max_time_s * 1e9)
    began = clock()
    min_ns = int(method.min_time_s * 1e9)
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append(t1 - t0)
        if len(samples) >= method.min_repeats and t1 - began >= min_ns:
            converged = True
            break
        if t1 >= deadline:
            converged = False
            break
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    p10, p50, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
    return LatencyStats(
        p10=float(p10), p50=float(p50), p90=float(p90), p99=float(p99), mean=float(ms.mean()),
        std=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0, min=float(ms.min()), repeats=len(ms),
        first_call_ms=first, converged=converged,
    )
