"""Latency of a zero-argument call: one method for every runtime, with its rules recorded (MLPerf LoadGen's habit).

The method is a config object, `LatencyMethod`, and plain functions:

- `measure_latency(call, method)` times `call` here: `collect_samples` runs a first call (reported
  apart), a warm-up that lasts at least `warmup` calls *and* `warmup_time_s`, then a steady state that
  repeats until at least `min_repeats` calls *and* `min_time_s` have passed *and* the confidence
  interval of the median (`median_ci`) is narrower than `max_ci_rel_width` of the median — or until
  `max_time_s` (warm-up and steady state together); `summarize` then computes the statistics and says
  whether the rules were met, and if not, which one was missed.
- `summarize(samples_ns, method, ...)` does the same for per-call times taken elsewhere (a browser's
  `performance.now()`, a phone's own loop), so every runtime's figure is computed, and judged, the same way.

The CI of the median (`median_ci`) comes from block medians, the batch-means idea applied to the median:
the samples, in call order, are cut into k = min(30, isqrt(n)) contiguous blocks of near-equal size,
and the distribution-free order-statistic interval (`median_ci_ranks`) is taken over the k block
medians; it is widened to hold the overall median, and by one clock tick on each side. Why blocks: the
order-statistic interval over all n calls assumes the calls are independent, but consecutive calls share
the machine's slow drift (clock frequency, cache and memory state, other processes), so over thousands
of calls that interval became far narrower than the difference between two runs in a row. Block medians
are nearly independent where single calls are not: with independent calls the interval is only about
25% wider than the one over all calls; under drift or autocorrelation it widens, as it should. Why the
tick: a reading of a quantized clock is off by up to one tick, which no number of calls averages away
(a page's `performance.now()` ticks every 5 µs, where one call may take 65 µs). Fewer than 6 blocks
(36 samples at the 95% level) give no CI.

The caller prepares inputs before the clock starts (a runner's `predictor`); only the call is timed,
with `time.perf_counter_ns`, into a preallocated integer array. Nothing else runs between the two clock
readings: no conversion, no logging, no checks (the convergence test runs between batches of calls,
on geometrically spaced counts, so its cost per call is constant and outside every sample).

Standard library and NumPy only: this module loads in every toolchain environment.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

Clock = Callable[[], int]

#: what `measure_latency` reads time with; recorded with every figure
DEFAULT_CLOCK = "time.perf_counter_ns"
#: its tick in nanoseconds, as the platform states it (1 ns on Linux)
NATIVE_CLOCK_TICK_NS = time.get_clock_info("perf_counter").resolution * 1e9

#: the CI of the median is taken over at most this many block medians (at 95%: the 10th to the 21st of 30) ...
MAX_CI_BLOCKS = 30
#: ... and over at least this many (6 is the fewest with a 95% order-statistic interval); fewer: no CI
MIN_CI_BLOCKS = 6


@dataclass(frozen=True)
class LatencyMethod:
    """The rules of one latency measurement. Times in seconds; the CI is that of the median.

    The CI of the median is the order-statistic interval over the medians of k = min(30, isqrt(n))
    contiguous blocks of the n samples, widened by one clock tick on each side (`median_ci`): calls in a
    row are not independent, blocks of them nearly are, and a quantized clock is off by up to a tick.

    Defaults, and why:
    - `warmup=10` calls and `warmup_time_s=0.1`: the count covers lazy work of the first few calls
      (allocator arenas, kernel selection, a `tf.function` retrace); the time lets the CPU clock
      governor ramp up and the caches fill, whatever one call costs.
    - `min_repeats=100`: the 95% CI of the median exists from 36 calls (6 blocks of 6), but the p99 of
      fewer than 100 calls is only the slowest call or two.
    - `min_time_s=0.5`: spans many scheduler ticks and periodic interference, so a quiet or a noisy
      instant does not decide the figure.
    - `max_ci_rel_width=0.05`: the median is known to about ±2.5%, enough to rank runtimes that
      differ by 5% or more; `ci_level=0.95`.
    - `max_time_s=10`: a slow model or a noisy machine costs at most this, and says so.
    """

    batch_size: int = 1
    warmup: int = 10
    warmup_time_s: float = 0.1
    min_repeats: int = 100
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    ci_level: float = 0.95
    max_ci_rel_width: float = 0.05

    def __post_init__(self) -> None:
        checks = (
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.warmup >= 0, "warmup must be 0 or more calls"),
            (self.warmup_time_s >= 0, "warmup_time_s must be 0 or more"),
            (self.min_repeats >= 1, "min_repeats must be at least 1"),
            (self.min_time_s >= 0, "min_time_s must be 0 or more"),
            (self.max_time_s > 0, "max_time_s must be positive"),
            (self.max_time_s >= self.min_time_s + self.warmup_time_s,
             "max_time_s must leave room for warmup_time_s + min_time_s"),
            (0.5 <= self.ci_level < 1, "ci_level must be in [0.5, 1)"),
            (self.max_ci_rel_width > 0, "max_ci_rel_width must be positive"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"LatencyMethod: {message}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyMethod:
        """The method from a config section; keys it does not know are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MedianCI:
    """Distribution-free CI of the median: the order statistics x(low_rank) and x(high_rank), 1-based.

    With B ~ Binomial(n, 1/2), P(x(j) <= median <= x(n-j+1)) = 1 - 2 P(B <= j-1); `low_rank` is the
    largest j whose coverage is at least the level asked for, and `coverage` is that exact coverage.
    """

    low_rank: int
    high_rank: int
    coverage: float


def median_ci_ranks(n: int, level: float = 0.95) -> MedianCI | None:
    """The ranks of the CI of the median of `n` samples, or None where `n` is too small for `level`."""
    if n < 1:
        return None
    tail = (1.0 - level) / 2.0
    # sum the Binomial(n, 1/2) pmf upwards from 12 standard deviations below n/2 (the mass below is < 1e-30)
    i = max(0, math.floor(n / 2 - 6 * math.sqrt(n)))
    pmf = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0))
    cdf, rank, below = 0.0, 0, 0.0
    while i <= n // 2:
        cdf += pmf  # P(B <= i)
        if cdf > tail:
            break
        rank, below = i + 1, cdf  # P(B <= rank - 1) <= tail
        pmf *= (n - i) / (i + 1)
        i += 1
    if rank == 0:
        return None
    return MedianCI(rank, n - rank + 1, 1.0 - 2.0 * below)


@dataclass(frozen=True)
class BlockMedianCI:
    """The CI of the median of samples taken in a row (`median_ci`), in the samples' unit.

    `coverage` is the exact coverage of the order-statistic interval over the `blocks` block medians
    (>= the level asked for), which holds when the blocks' medians are independent; the widening to
    the overall median and by the clock tick only adds to it.
    """

    low: float
    high: float
    median: float  # of all the samples
    coverage: float
    blocks: int

    @property
    def rel_width(self) -> float:
        """(high - low) / median; infinite where the median is not positive."""
        return (self.high - self.low) / self.median if self.median > 0 else math.inf


def ci_block_count(n: int) -> int:
    """How many contiguous blocks `median_ci` cuts `n` samples into: min(30, isqrt(n))."""
    return min(MAX_CI_BLOCKS, math.isqrt(n))


def min_ci_repeats(level: float = 0.95) -> int | None:
    """The fewest samples that have a CI of the median at `level` (36 at 95%); None where no count has one."""
    for blocks in range(MIN_CI_BLOCKS, MAX_CI_BLOCKS + 1):
        if median_ci_ranks(blocks, level) is not None:
            return blocks * blocks
    return None


def median_ci(samples: Sequence[float] | np.ndarray, level: float = 0.95, tick: float = 0.0, *,
              median: float | None = None) -> BlockMedianCI | None:
    """The CI of the median of `samples` (in call order) from block medians, or None for too few samples.

    The samples are cut, in order, into k = min(30, isqrt(n)) contiguous blocks of near-equal size
    (`np.array_split`: the first n % k blocks hold one sample more); the interval is the order-statistic
    CI (`median_ci_ranks(k, level)`) over the k block medians, stretched to hold the overall median, then
    widened by `tick` (the clock's tick per sample, in the samples' unit) on each side, since a quantized
    reading is off by up to one tick. None where k < 6 or `level` needs more blocks than k.
    `median` is that of all the samples, where the caller has it already.
    """
    values = np.asarray(samples)
    blocks = ci_block_count(int(values.size))
    ranks = median_ci_ranks(blocks, level) if blocks >= MIN_CI_BLOCKS else None
    if ranks is None:
        return None
    middle = float(np.median(values)) if median is None else float(median)
    block_medians = np.sort([np.median(block) for block in np.array_split(values, blocks)])
    low = min(float(block_medians[ranks.low_rank - 1]), middle) - tick
    high = max(float(block_medians[ranks.high_rank - 1]), middle) + tick
    return BlockMedianCI(low, high, middle, ranks.coverage, blocks)


@dataclass(frozen=True)
class LatencyStats:
    """One latency figure: per-call times in milliseconds at `batch_size`, and whether the method's rules were met."""

    batch_size: int
    first_call_ms: float | None
    p10: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    repeats: int  # samples (each times `calls_per_sample` calls)
    median_ci_low: float | None  # None where too few samples for the level (`median_ci`)
    median_ci_high: float | None
    ci_level: float  # asked for
    ci_coverage: float | None  # exact coverage of the order-statistic interval over the block medians (>= ci_level)
    ci_rel_width: float | None  # (high - low) / p50, achieved
    ci_blocks: int | None  # how many block medians the CI was taken over
    warmup_calls: int
    warmup_s: float
    elapsed_s: float  # steady state
    converged: bool
    unmet: tuple[str, ...]  # the rules not met (empty when converged)
    clock: str
    clock_tick_ns: float  # the clock's tick: the CI is widened by one tick per sample on each side
    calls_per_sample: int  # calls timed together per sample (each sample is their time / this)

    @property
    def p50_per_image(self) -> float:
        return self.p50 / self.batch_size

    @property
    def mean_per_image(self) -> float:
        return self.mean / self.batch_size

    @property
    def throughput(self) -> float:
        """Images per second, one call after another."""
        return 1e3 * self.batch_size / self.mean if self.mean > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unmet": list(self.unmet)}

    def method_fields(self) -> dict[str, Any]:
        """What a record needs beside the method's rules to judge the figure."""
        return {
            "repeats": self.repeats,
            "warmup_calls": self.warmup_calls,
            "warmup_s": round(self.warmup_s, 6),
            "elapsed_s": round(self.elapsed_s, 6),
            "ci_coverage": None if self.ci_coverage is None else round(self.ci_coverage, 6),
            "ci_rel_width": None if self.ci_rel_width is None else round(self.ci_rel_width, 6),
            "ci_blocks": self.ci_blocks,
            "converged": self.converged,
            "unmet": list(self.unmet),
            "clock": self.clock,
            "clock_tick_ns": round(self.clock_tick_ns, 3),
            "calls_per_sample": self.calls_per_sample,
        }


def summarize(
    samples_ns: Sequence[int] | np.ndarray,
    method: LatencyMethod = LatencyMethod(),
    *,
    first_call_ns: float | None = None,
    warmup_calls: int | None = None,
    warmup_ns: float | None = None,
    elapsed_ns: float | None = None,
    clock: str = DEFAULT_CLOCK,
    clock_tick_ns: float = NATIVE_CLOCK_TICK_NS,
    calls_per_sample: int = 1,
) -> LatencyStats:
    """Statistics of steady-state per-call times (nanoseconds) and the verdict of `method`'s rules on them.

    For timings taken elsewhere: `warmup_calls` and `warmup_ns` default to the method's own (the
    caller vouches for its warm-up), `elapsed_ns` to the sum of the samples. `clock_tick_ns` is the
    tick of the clock the samples were read with (default: this process's `perf_counter`), and
    `calls_per_sample` how many calls each sample timed together (it is their time divided by that
    count), so the CI of the median is widened by `clock_tick_ns / calls_per_sample` on each side.
    """
    ns = np.asarray(samples_ns, dtype=np.float64)
    n = int(ns.size)
    if n == 0:
        raise ValueError("summarize: no samples")
    if calls_per_sample < 1 or clock_tick_ns < 0:
        raise ValueError(f"summarize: calls_per_sample {calls_per_sample} must be >= 1 and clock_tick_ns "
                         f"{clock_tick_ns} >= 0")
    ms = ns / 1e6
    p10, p50, p90, p99 = (float(v) for v in np.percentile(ms, [10, 50, 90, 99]))
    ci = median_ci(ms, method.ci_level, clock_tick_ns / calls_per_sample / 1e6, median=p50)
    warmup_calls = method.warmup if warmup_calls is None else int(warmup_calls)
    warmup_ns = method.warmup_time_s * 1e9 if warmup_ns is None else float(warmup_ns)
    elapsed_ns = float(ns.sum()) if elapsed_ns is None else float(elapsed_ns)
    width = None if ci is None else ci.rel_width
    unmet = unmet_rules(method, n, elapsed_ns, warmup_calls, warmup_ns, width)
    return LatencyStats(
        batch_size=method.batch_size, first_call_ms=None if first_call_ns is None else first_call_ns / 1e6,
        p10=p10, p50=p50, p90=p90, p99=p99, mean=float(ms.mean()), std=float(ms.std(ddof=1)) if n > 1 else 0.0,
        min=float(ms.min()), max=float(ms.max()), repeats=n,
        median_ci_low=None if ci is None else ci.low, median_ci_high=None if ci is None else ci.high,
        ci_level=method.ci_level, ci_coverage=None if ci is None else ci.coverage, ci_rel_width=width,
        ci_blocks=None if ci is None else ci.blocks, warmup_calls=warmup_calls, warmup_s=warmup_ns / 1e9,
        elapsed_s=elapsed_ns / 1e9, converged=not unmet, unmet=tuple(unmet), clock=clock,
        clock_tick_ns=float(clock_tick_ns), calls_per_sample=int(calls_per_sample),
    )


def unmet_rules(method: LatencyMethod, repeats: int, elapsed_ns: float, warmup_calls: int, warmup_ns: float,
                ci_rel_width: float | None) -> list[str]:
    """The method's rules a measurement missed, each as a short sentence; empty when it converged."""
    unmet = []
    if warmup_calls < method.warmup:
        unmet.append(f"warm-up ran {warmup_calls} of {method.warmup} calls")
    if warmup_ns < method.warmup_time_s * 1e9:
        unmet.append(f"warm-up ran {warmup_ns / 1e9:.3g} of {method.warmup_time_s:g} s")
    if repeats < method.min_repeats:
        unmet.append(f"{repeats} of {method.min_repeats} repeats")
    if elapsed_ns < method.min_time_s * 1e9:
        unmet.append(f"steady state ran {elapsed_ns / 1e9:.3g} of {method.min_time_s:g} s")
    if ci_rel_width is None:
        needed = min_ci_repeats(method.ci_level)
        unmet.append(f"too few repeats for a {method.ci_level:.0%} CI of the median"
                     + (f" (it takes {needed})" if needed is not None else ""))
    elif ci_rel_width > method.max_ci_rel_width:
        unmet.append(f"median CI is {ci_rel_width:.3g} of the median wide (at most {method.max_ci_rel_width:g})")
    return unmet


@dataclass(frozen=True)
class LatencySamples:
    """What one run of the method's loop collected: `summarize(**samples.as_kwargs(), method=...)` judges it."""

    samples_ns: np.ndarray  # steady-state per-call times, int64 nanoseconds, in call order
    first_call_ns: int
    warmup_calls: int
    warmup_ns: int
    elapsed_ns: int  # wall time of the steady state (the samples and the loop between them)
    clock: str = DEFAULT_CLOCK
    clock_tick_ns: float = NATIVE_CLOCK_TICK_NS
    calls_per_sample: int = 1  # this process times every call on its own: its clock ticks in 1 ns

    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def measure_latency(call: Callable[[], Any], method: LatencyMethod = LatencyMethod(), *,
                    clock: Clock = time.perf_counter_ns, clock_name: str = DEFAULT_CLOCK,
                    clock_tick_ns: float = NATIVE_CLOCK_TICK_NS) -> LatencyStats:
    """Time `call` by `method`: first call, warm-up (count and time), steady state until the rules or `max_time_s`.

    `clock` returns integer nanoseconds and ticks every `clock_tick_ns` (injectable for tests). The
    result's `converged` says whether every rule was met; `unmet` says which were not.
    """
    samples = collect_samples(call, method, clock=clock, clock_name=clock_name, clock_tick_ns=clock_tick_ns)
    return summarize(method=method, **samples.as_kwargs())


def collect_samples(call: Callable[[], Any], method: LatencyMethod = LatencyMethod(), *,
                    clock: Clock = time.perf_counter_ns, clock_name: str = DEFAULT_CLOCK,
                    clock_tick_ns: float = NATIVE_CLOCK_TICK_NS) -> LatencySamples:
    """The method's loop alone (what a browser page or a phone runs in its own language): the raw times.

    One call per sample: `perf_counter_ns` ticks in 1 ns on Linux, far below any call worth timing, so
    there is no need to time calls in groups as the browser page does with its 5 µs clock.
    """
    t0 = clock()
    call()
    t1 = clock()
    first_ns = t1 - t0
    deadline = t1 + int(method.max_time_s * 1e9)

    # warm-up: at least `warmup` calls and at least `warmup_time_s`, never past the deadline
    warm_end = t1 + int(method.warmup_time_s * 1e9)
    warmup_calls, now = 0, t1
    while (warmup_calls < method.warmup or now < warm_end) and now < deadline:
        call()
        warmup_calls += 1
        now = clock()
    warmup_ns = now - t1

    # steady state, in batches of calls: the rules are checked between batches, never inside one
    per_call = max(warmup_ns // warmup_calls if warmup_calls else first_ns, 1)
    expected = method.min_repeats + int(method.min_time_s * 1e9) // per_call
    samples = array("q", bytes(8 * min(max(expected + expected // 4, 64), 1 << 20)))
    n = 0
    began = clock()
    min_end = began + int(method.min_time_s * 1e9)
    target, until = max(method.min_repeats, 1), deadline
    while True:
        if target > len(samples):
            samples.frombytes(bytes(8 * (target - len(samples))))
        n, last = _timed_calls(call, clock, samples, n, target, until)
        if last >= deadline:
            break
        if n < method.min_repeats:  # cannot happen: the batch ended on its count
            target = method.min_repeats
            continue
        if last < min_end:  # enough calls, not yet enough time: keep going until min_end
            target, until = max(2 * n, n + 64), min(min_end, deadline)
            continue
        if _ci_rel_width(samples, n, method.ci_level, clock_tick_ns) <= method.max_ci_rel_width:
            break
        target, until = n + max(n // 4, 16), deadline
    return LatencySamples(np.frombuffer(samples, dtype=np.int64, count=n).copy(), first_ns, warmup_calls, warmup_ns,
                          last - began, clock_name, clock_tick_ns)


def _timed_calls(call: Callable[[], Any], clock: Clock, samples: array, start: int, stop: int,
                 until: int) -> tuple[int, int]:
    """Fill samples[start:stop] with per-call times; stop early at the first call that ends at or after `until`.

    The innermost loop of the method: between the two clock readings there is only the call.
    """
    t1 = 0  # the caller always asks for at least one call
    for i in range(start, stop):
        t0 = clock()
        call()
        t1 = clock()
        samples[i] = t1 - t0
        if t1 >= until:
            return i + 1, t1
    return stop, t1


def _ci_rel_width(samples: array, n: int, level: float, tick_ns: float) -> float:
    """The relative width of `median_ci` over samples[:n]; infinite where there is no CI yet.

    A function of its own so that its NumPy view of `samples` is gone before the buffer grows again.
    """
    ci = median_ci(np.frombuffer(samples, dtype=np.int64, count=n), level, tick_ns)
    return math.inf if ci is None else ci.rel_width
