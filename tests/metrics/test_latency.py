"""The latency method, deterministically: a fake clock and fake calls drive it, no timing is asserted.

The fake clock only moves when a fake call runs, by a duration the test chooses; so every count, every
statistic and every verdict below is exact. The last tests run one real evaluate job and check that its
rows carry the method, and that the report still draws p50 with p10–p90 bars from them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from math import comb

import numpy as np
import pytest

from dlcompat.metrics.latency import (
    LatencyMethod,
    ci_block_count,
    collect_samples,
    measure_latency,
    median_ci,
    median_ci_ranks,
    min_ci_repeats,
    summarize,
)
from dlcompat.study.config import LatencySettings, load_preset

MS = 1_000_000  # ns
US = 1_000  # ns


class FakeRuntime:
    """A clock in integer nanoseconds and a zero-argument call that advances it by the next duration."""

    def __init__(self, durations: Iterator[int] | Callable[[int], int]) -> None:
        self.now = 1_000 * MS
        self.calls = 0
        self._next = durations if callable(durations) else (lambda _i, it=durations: next(it))

    def clock(self) -> int:
        return self.now

    def call(self) -> None:
        self.now += self._next(self.calls)
        self.calls += 1


def constant(ms: float) -> Callable[[int], int]:
    return lambda _i: int(ms * MS)


def measure(runtime: FakeRuntime, **rules: float) -> object:
    return measure_latency(runtime.call, LatencyMethod(**rules), clock=runtime.clock, clock_name="fake")


def all_samples_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The interval the method used before block medians: order statistics over every sample, as if independent."""
    ranks = median_ci_ranks(len(samples), level)
    ordered = np.sort(samples)
    return float(ordered[ranks.low_rank - 1]), float(ordered[ranks.high_rank - 1])


def slow_wander(rng: np.random.Generator, n: int, calls: float, size: float) -> np.ndarray:
    """A machine's slow drift: an AR(1) wander that forgets itself over about `calls` calls, sd `size`."""
    phi = math.exp(-1.0 / calls)
    steps = rng.normal(0.0, size * math.sqrt(1.0 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, size)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + steps[i]
    return out


# -- the order-statistic CI of the median ---------------------------------------------------------------


def brute_force_ranks(n: int, level: float) -> tuple[int, int, float] | None:
    best, count = None, 0
    for j in range(1, n // 2 + 2):
        count += comb(n, j - 1)
        below = count / 2**n  # P(B <= j - 1), exactly, from integers
        if below <= (1 - level) / 2:
            best = (j, n - j + 1, 1 - 2 * below)
    return best


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 10, 11, 20, 50, 99, 100, 257, 1000])
def test_median_ci_ranks_are_the_exact_binomial_ones(n: int, level: float) -> None:
    expected = brute_force_ranks(n, level)
    got = median_ci_ranks(n, level)
    if expected is None:
        assert got is None
    else:
        assert (got.low_rank, got.high_rank) == expected[:2]
        assert got.coverage == pytest.approx(expected[2], abs=1e-12)
        assert got.coverage >= level


def test_median_ci_ranks_of_textbook_cases() -> None:
    assert median_ci_ranks(5, 0.95) is None  # 2 * (1/2)^5 = 6.25% > 5%: no 95% interval exists
    assert (median_ci_ranks(6, 0.95).low_rank, median_ci_ranks(6, 0.95).high_rank) == (1, 6)
    assert (median_ci_ranks(10, 0.95).low_rank, median_ci_ranks(10, 0.95).high_rank) == (2, 9)
    assert (median_ci_ranks(100, 0.95).low_rank, median_ci_ranks(100, 0.95).high_rank) == (40, 61)
    big = median_ci_ranks(1_000_000, 0.95)  # fast and symmetric about the middle
    assert big.low_rank + big.high_rank == 1_000_001 and abs(big.low_rank - (500_000 - 980)) < 5


def test_summarize_gives_the_median_ci_on_known_samples() -> None:
    # 1..100 ms dealt into 10 blocks of 10 so that each block holds one value of every ten: block medians 46..55
    samples = np.arange(1, 101).reshape(10, 10).T.ravel() * MS
    method = LatencyMethod(min_repeats=1, min_time_s=0, warmup=0, warmup_time_s=0)
    stats = summarize(samples, method, clock_tick_ns=0)
    assert stats.ci_blocks == 10  # isqrt(100)
    assert (stats.median_ci_low, stats.median_ci_high) == (47.0, 54.0)  # the 2nd and 9th of 10 block medians
    assert stats.p50 == 50.5 and stats.min == 1.0 and stats.max == 100.0 and stats.repeats == 100
    assert stats.ci_rel_width == pytest.approx(7 / 50.5)
    assert stats.ci_coverage == pytest.approx(median_ci_ranks(10, 0.95).coverage)
    assert stats.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    # the same values in rising order: the blocks follow the rise, and so does the interval
    rising = summarize(np.arange(1, 101) * MS, method, clock_tick_ns=0)
    assert (rising.median_ci_low, rising.median_ci_high) == (15.5, 85.5)
    # the native clock's tick (1 ns by default on Linux) widens it on each side
    ticked = summarize(samples, method, clock_tick_ns=1)
    assert ticked.median_ci_low == pytest.approx(47.0 - 1e-6) and ticked.median_ci_high == pytest.approx(54.0 + 1e-6)
    for n in (10, 35):  # fewer than 6 blocks: no CI
        few = summarize(np.arange(1, n + 1) * MS, LatencyMethod(min_repeats=1, min_time_s=0))
        assert few.median_ci_low is None and few.ci_rel_width is None and few.ci_blocks is None
        assert not few.converged and "too few repeats for a 95% CI of the median (it takes 36)" in few.unmet


# -- the CI of the median from block medians ---------------------------------------------------------------


def test_block_count_rule() -> None:
    assert [ci_block_count(n) for n in (0, 1, 35, 36, 48, 49, 899, 900, 10**6)] == [0, 1, 5, 6, 6, 7, 29, 30, 30]
    assert median_ci(np.ones(35)) is None and median_ci(np.ones(36)).blocks == 6
    assert min_ci_repeats(0.95) == 36 and min_ci_repeats(0.99) == 64  # 8 blocks: 1 - 2 / 2**8 >= 0.99
    assert median_ci(np.ones(63), 0.99) is None and median_ci(np.ones(64), 0.99).blocks == 8
    # as np.array_split: 38 samples in 6 blocks of 7, 7, 6, 6, 6, 6, in call order
    ci = median_ci(np.arange(38.0))
    assert ci.blocks == 6 and ci.median == 18.5
    assert (ci.low, ci.high) == (3.0, 34.5)  # the lowest and highest block medians, [0..6] and [32..37]


def test_the_ci_always_holds_the_overall_median() -> None:
    # 30 blocks of 30: 21 whose median is 1 (16 ones, 14 nines), then 9 of nines only. The 10th and 21st block
    # medians are both 1, yet most samples are 9: the interval is stretched to the overall median
    low_block, high_block = [1.0] * 16 + [9.0] * 14, [9.0] * 30
    ci = median_ci(np.array(low_block * 21 + high_block * 9), 0.95, tick=0.0)
    assert ci.blocks == 30 and ci.median == 9.0 and (ci.low, ci.high) == (1.0, 9.0)


def test_drift_within_a_run_widens_the_ci_where_the_all_samples_interval_stays_narrow() -> None:
    """Two halves of one run stand for two runs in a row: the CI should hold both their medians.

    The machine wanders slowly (3% over about 100 calls) under 5% call-to-call noise. Calls in a row are
    then not independent: the interval over all samples is far too narrow and misses a half's median in
    most runs; the block-median one holds both in about 95% of them.
    """
    new_holds = old_holds = 0
    widths = []
    runs = 40
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        n = 10_000
        samples = MS * (1 + slow_wander(rng, n, calls=100, size=0.03)) * rng.lognormal(0, 0.05, n)
        halves = float(np.median(samples[: n // 2])), float(np.median(samples[n // 2:]))
        ci = median_ci(samples, 0.95, tick=1.0)
        low, high = all_samples_interval(samples)
        new_holds += ci.low <= min(halves) and max(halves) <= ci.high
        old_holds += low <= min(halves) and max(halves) <= high
        widths.append((ci.high - ci.low) / (high - low))
    assert new_holds >= 0.8 * runs and old_holds <= 0.4 * runs, (new_holds, old_holds)
    assert float(np.median(widths)) > 3


def test_a_step_halfway_spreads_the_ci_over_the_step() -> None:
    # 3% slower from the middle on, under 5% noise: the all-samples interval sits in the middle, narrower than
    # a tenth of the step; the block-median one spans most of it (its ends are the 10th and 21st of 30 block
    # medians, so they lie a little inside the two halves' medians, not beyond them)
    rng = np.random.default_rng(0)
    n = 10_000
    samples = MS * rng.lognormal(0, 0.05, n) * np.where(np.arange(n) < n // 2, 1.0, 1.03)
    first, second = float(np.median(samples[: n // 2])), float(np.median(samples[n // 2:]))
    low, high = all_samples_interval(samples)
    ci = median_ci(samples, 0.95, tick=1.0)
    assert first < low <= high < second and high - low < 0.1 * (second - first)
    assert ci.low <= low and high <= ci.high and ci.high - ci.low > 0.75 * (second - first)


@pytest.mark.parametrize("durations_us", [[65], [65, 70]])
def test_a_coarse_clock_leaves_the_ci_at_least_a_tick_either_side(durations_us: list[int]) -> None:
    # a browser page's performance.now() ticks every 5 µs: every call reads 65 µs, or 65 and 70 in turn
    samples = np.resize(np.array(durations_us) * US, 2_000)
    method = LatencyMethod(min_repeats=1, min_time_s=0)
    stats = summarize(samples, method, clock_tick_ns=5 * US)
    assert stats.median_ci_low <= stats.p50 - 0.005 and stats.median_ci_high >= stats.p50 + 0.005
    assert not stats.converged and stats.ci_rel_width >= 0.01 / stats.p50  # two ticks of ~65 µs: > 5%
    # 7 calls per sample (as the page chooses for 65 µs calls): the floor is a seventh of a tick per sample
    grouped = summarize(samples, method, clock_tick_ns=5 * US, calls_per_sample=7)
    assert grouped.median_ci_low <= grouped.p50 - 0.005 / 7 and grouped.median_ci_high >= grouped.p50 + 0.005 / 7
    assert grouped.calls_per_sample == 7 and grouped.clock_tick_ns == 5 * US
    if len(durations_us) == 1:
        assert grouped.converged and grouped.ci_rel_width == pytest.approx(2 * 5 / 7 / 65)
    with pytest.raises(ValueError, match="calls_per_sample"):
        summarize(samples, method, calls_per_sample=0)


def test_independent_calls_give_a_ci_only_a_little_wider_than_the_all_samples_one() -> None:
    ratios = []
    for seed in range(50):
        samples = np.random.default_rng(seed).lognormal(np.log(MS), 0.3, 2_000)
        ci = median_ci(samples, 0.95, tick=1.0)
        low, high = all_samples_interval(samples)
        assert ci.low <= ci.median <= ci.high and ci.blocks == 30
        ratios.append((ci.high - ci.low) / (high - low))
    assert 1.1 <= float(np.mean(ratios)) <= 1.6, np.mean(ratios)


# -- the first call, the warm-up -----------------------------------------------------------------------


def test_the_first_call_is_reported_apart_and_never_in_the_samples() -> None:
    runtime = FakeRuntime(lambda i: 500 * MS if i == 0 else MS)  # a compile on the first call
    stats = measure(runtime, warmup=3, warmup_time_s=0, min_repeats=20, min_time_s=0)
    assert stats.first_call_ms == 500.0
    assert stats.max == 1.0 and stats.p50 == 1.0 and stats.std == 0.0
    assert stats.converged and stats.unmet == ()
    # nothing else is called: the first call, the warm-up and the samples are every call there was
    assert runtime.calls == 1 + stats.warmup_calls + stats.repeats


def test_warmup_by_count() -> None:
    stats = measure(FakeRuntime(constant(1)), warmup=10, warmup_time_s=0.0, min_repeats=10, min_time_s=0)
    assert stats.warmup_calls == 10 and stats.warmup_s == pytest.approx(0.010)


def test_warmup_by_time_when_the_count_comes_first() -> None:
    stats = measure(FakeRuntime(constant(1)), warmup=2, warmup_time_s=0.05, min_repeats=10, min_time_s=0)
    assert stats.warmup_calls == 50 and stats.warmup_s == pytest.approx(0.050)


def test_warmup_stops_at_max_time_and_says_so() -> None:
    stats = measure(FakeRuntime(constant(100)), warmup=1000, warmup_time_s=0.0, min_repeats=5, min_time_s=0,
                    max_time_s=1.0)
    assert stats.warmup_calls == 10 and stats.repeats == 1  # the steady state still takes one sample
    assert not stats.converged
    assert "warm-up ran 10 of 1000 calls" in stats.unmet


# -- the steady state: convergence and non-convergence ------------------------------------------------


def test_steady_state_runs_to_both_minimums() -> None:
    # 1 ms calls: 20 calls come first, then the 0.1 s minimum decides
    stats = measure(FakeRuntime(constant(1)), warmup=0, warmup_time_s=0, min_repeats=20, min_time_s=0.1)
    assert stats.repeats == 100 and stats.elapsed_s == pytest.approx(0.1)
    assert stats.converged and stats.ci_rel_width == pytest.approx(2 / MS)  # a 1 ns tick on each side
    # 10 ms calls: the time comes first, then the count decides
    stats = measure(FakeRuntime(constant(10)), warmup=0, warmup_time_s=0, min_repeats=50, min_time_s=0.1)
    assert stats.repeats == 50 and stats.converged and stats.ci_blocks == 7


def test_too_few_repeats_for_a_ci_go_on_until_six_blocks() -> None:
    # 10 calls are enough by count and time, but a CI needs 36: batches of 16 more calls, checked between them
    stats = measure(FakeRuntime(constant(1)), warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0)
    assert stats.repeats == 42 and stats.ci_blocks == 6 and stats.converged


def test_a_coarse_injected_clock_keeps_the_ci_wide_until_max_time() -> None:
    # a clock that ticks every 5 µs under 65 µs calls: one call per sample can never reach a 5% CI
    runtime = FakeRuntime(constant(0.065))
    stats = measure_latency(runtime.call, LatencyMethod(warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0,
                                                        max_time_s=0.05),
                            clock=runtime.clock, clock_name="fake", clock_tick_ns=5 * US)
    assert not stats.converged and stats.clock_tick_ns == 5 * US and stats.calls_per_sample == 1
    assert stats.ci_rel_width == pytest.approx(10 / 65) and any(r.startswith("median CI is") for r in stats.unmet)


def test_steady_state_repeats_until_the_median_ci_is_narrow_enough() -> None:
    rng = np.random.default_rng(0)
    durations = iter(int(d) for d in rng.lognormal(np.log(MS), 0.5, size=100_000))
    stats = measure(FakeRuntime(durations), warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0,
                    max_ci_rel_width=0.05)
    assert stats.converged and stats.unmet == ()
    assert stats.repeats > 40  # 40 lognormal samples give a median CI far wider than 5%
    assert stats.ci_rel_width <= 0.05
    assert stats.median_ci_low <= stats.p50 <= stats.median_ci_high
    wide = summarize(rng.lognormal(0, 0.5, 40), LatencyMethod(min_repeats=1, min_time_s=0))
    assert wide.ci_rel_width > 0.05


def test_a_noisy_call_that_never_converges_stops_at_max_time() -> None:
    rng = np.random.default_rng(1)
    runtime = FakeRuntime(iter(int(d) for d in rng.uniform(1, 3, size=1_000_000) * MS))
    start = runtime.now
    stats = measure(runtime, warmup=5, warmup_time_s=0.01, min_repeats=20, min_time_s=0.1, max_time_s=1.0,
                    max_ci_rel_width=0.001)
    assert not stats.converged
    assert any(rule.startswith("median CI is") for rule in stats.unmet)
    # the first call, then at most max_time_s, overrun by at most one call
    assert runtime.now - start <= 3 * MS + 1_000 * MS + 3 * MS
    assert stats.repeats > 20 and stats.ci_rel_width > 0.001


def test_a_slow_call_that_cannot_reach_min_repeats_is_marked() -> None:
    stats = measure(FakeRuntime(constant(100)), warmup=0, warmup_time_s=0, min_repeats=50, min_time_s=0,
                    max_time_s=1.0)
    assert stats.repeats == 10 and not stats.converged
    assert "10 of 50 repeats" in stats.unmet


# -- per-image figures, timings taken elsewhere -------------------------------------------------------


def test_per_image_figures() -> None:
    stats = measure(FakeRuntime(constant(2)), batch_size=4, warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0)
    assert stats.batch_size == 4 and stats.p50 == 2.0
    assert stats.p50_per_image == 0.5 and stats.mean_per_image == 0.5
    assert stats.throughput == pytest.approx(2000.0)


def test_summarize_judges_timings_taken_elsewhere_by_the_same_rules() -> None:
    method = LatencyMethod(warmup=5, warmup_time_s=0.01, min_repeats=50, min_time_s=0.1)
    page = [1.0 * MS] * 30  # e.g. performance.now() differences from a browser, in ns
    short = summarize(page, method, first_call_ns=40 * MS, warmup_calls=5, warmup_ns=12 * MS, clock="page")
    assert not short.converged and short.first_call_ms == 40.0 and short.clock == "page"
    assert short.unmet == ("30 of 50 repeats", "steady state ran 0.03 of 0.1 s",
                           "too few repeats for a 95% CI of the median (it takes 36)")
    enough = summarize([1.0 * MS] * 200, method, warmup_calls=5, warmup_ns=12 * MS)
    assert enough.converged and enough.elapsed_s == pytest.approx(0.2)  # elapsed defaults to the sum
    with pytest.raises(ValueError, match="no samples"):
        summarize([], method)


def test_collect_samples_keeps_the_raw_times_in_call_order() -> None:
    method = LatencyMethod(warmup=2, warmup_time_s=0, min_repeats=10, min_time_s=0)
    runtime = FakeRuntime(lambda i: (i + 1) * MS)  # every call 1 ms slower than the one before
    raw = collect_samples(runtime.call, method, clock=runtime.clock, clock_name="fake")
    assert raw.first_call_ns == MS and raw.warmup_calls == 2 and raw.warmup_ns == 5 * MS
    assert list(raw.samples_ns) == [(i + 4) * MS for i in range(len(raw.samples_ns))]
    assert raw.elapsed_ns == int(raw.samples_ns.sum())  # a fake clock spends nothing between calls
    stats = summarize(method=method, **raw.as_kwargs())
    assert stats.repeats == len(raw.samples_ns) and stats.clock == "fake" and stats.first_call_ms == 1.0
    assert raw.calls_per_sample == 1 and stats.calls_per_sample == 1 and stats.clock_tick_ns == raw.clock_tick_ns
    # every call slower than the last: the CI follows the drift instead of shrinking as calls accumulate
    low, high = all_samples_interval(raw.samples_ns)
    assert stats.median_ci_high - stats.median_ci_low > (high - low) / MS


def test_measure_latency_on_the_real_clock() -> None:
    stats = measure_latency(lambda: None, LatencyMethod(warmup=2, warmup_time_s=0, min_repeats=30, min_time_s=0))
    assert stats.repeats >= 30 and stats.clock == "time.perf_counter_ns" and stats.min >= 0
    fields = stats.method_fields()
    assert fields["repeats"] == stats.repeats and fields["calls_per_sample"] == 1
    assert fields["clock_tick_ns"] == pytest.approx(time.get_clock_info("perf_counter").resolution * 1e9)
    assert fields["ci_blocks"] == stats.ci_blocks >= 6


# -- the method as config --------------------------------------------------------------------------------


def test_config_and_method_agree_on_every_rule_and_default() -> None:
    assert LatencySettings().model_dump() == LatencyMethod().to_dict()
    quick = LatencyMethod.from_dict(load_preset("quick").latency.model_dump())
    # the fewest repeats that give a 95% CI of the median (6 blocks of 6), and time for them after the warm-up
    assert quick.min_repeats == 36 and quick.max_time_s >= quick.min_time_s + quick.warmup_time_s
    assert LatencyMethod.from_dict({"warmup": 3, "not_a_rule": 1}).warmup == 3


def test_a_method_that_cannot_converge_is_refused() -> None:
    with pytest.raises(ValueError, match="max_time_s"):
        LatencyMethod(min_time_s=5.0, max_time_s=1.0)
    with pytest.raises(ValueError, match="ci_level"):
        LatencyMethod(ci_level=1.0)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_time_s"):
        LatencySettings(min_time_s=5.0, max_time_s=1.0)


# -- the evaluate job records the method with every figure --------------------------------------------

TINY = """
name = "latency-method"
models = ["lenet1"]
check_reproducibility = false
[data]
limit_train = 200
limit_test = 40
[train]
epochs = 1
[latency]
batch_size = 2
warmup = 3
warmup_time_s = 0.01
min_repeats = 20
min_time_s = 0.02
max_time_s = 5.0
"""

METHOD_FIELDS = {
    "api", "batch_size", "warmup", "warmup_time_s", "warmup_calls", "warmup_s", "min_repeats", "repeats",
    "min_time_s", "max_time_s", "elapsed_s", "ci_level", "ci_coverage", "max_ci_rel_width", "ci_rel_width",
    "ci_blocks", "calls_per_sample", "clock_tick_ns", "converged", "unmet", "threads", "intra_op_threads",
    "inter_op_threads", "delegate", "clock", "runtime", "version",
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> list[dict]:
    from dlcompat.store.db import ResultStore, database_url
    from dlcompat.study.config import parse_config
    from dlcompat.study.runner import run_study

    out = tmp_path_factory.mktemp("latency-study")
    summary = run_study(parse_config(TINY), out, executor="inline")
    assert summary.failed == 0, summary
    return ResultStore(database_url(out)).rows(summary.run_id)


def test_every_latency_row_carries_the_method(evaluated) -> None:
    latency = [r for r in evaluated if r["metric"].startswith("latency_") or r["metric"] == "first_inference"]
    targets = {r["target"] for r in latency}
    assert targets == {"pytorch", "onnxruntime"}
    for row in latency:
        method = row["method"]
        assert set(method) >= METHOD_FIELDS, METHOD_FIELDS - set(method)
        assert method["batch_size"] == 2 and method["warmup"] == 3 and method["min_repeats"] == 20
        assert method["repeats"] >= 20 and method["warmup_calls"] >= 3
        assert method["clock"] == "time.perf_counter_ns" and method["delegate"] == "none"
        assert method["intra_op_threads"] == 1  # threads = 1, as the runtime itself reports it
        assert isinstance(method["converged"], bool) and method["converged"] == (method["unmet"] == [])
    by = {(r["target"], r["metric"]): r for r in evaluated}
    assert by[("onnxruntime", "latency_p50")]["method"]["api"] == "InferenceSession.run"
    assert "inference_mode" in by[("pytorch", "latency_p50")]["method"]["api"]
    for target in targets:
        p50, low, high = (by[(target, m)]["value"] for m in
                          ("latency_p50", "latency_median_ci_low", "latency_median_ci_high"))
        assert low <= p50 <= high
        assert by[(target, "latency_p50_per_image")]["value"] == pytest.approx(p50 / 2)
        assert "predictor_setup_ms" in by[(target, "first_inference")]["method"]
        for metric in ("peak_rss_load", "peak_rss_inference", "peak_rss"):
            assert by[(target, metric)]["value"] > 0 and by[(target, metric)]["unit"] == "bytes"
        assert by[(target, "peak_rss")]["value"] >= by[(target, "peak_rss_inference")]["value"]
        assert by[(target, "load_time")]["value"] > 0


def test_the_report_still_draws_p50_with_p10_to_p90_bars(evaluated) -> None:
    from dlcompat.report.charts import latency_chart
    from dlcompat.report.rows import normalize_rows
    from dlcompat.report.tables import latency_table

    rows = normalize_rows(evaluated)
    figure = latency_chart(rows)
    assert figure is not None
    bars = figure["data"]
    assert len(bars) == 2 and all("error_y" in bar for bar in bars)
    table = latency_table(rows)
    assert len(table) == 2 and {"p50", "p10", "p90", "api", "batch"} <= {c.label for c in table.columns}
    assert all(math.isfinite(bar["y"][0]) for bar in bars)
