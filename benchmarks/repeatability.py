"""Benchmark: is a dlcompat latency figure repeatable? The same measurement twice in a row, per runtime.

For every runtime present (LeNet-5, batch 1, one thread, loaded through dlcompat's runners exactly as in
`harness_overhead.py`), runs `metrics.latency.measure_latency` with the study's default method twice in
a row and prints both medians, their ratio, and three checks of the two against the reported CIs of the
median, from the strictest:

- the second median lies within the first run's CI. The first interval covers the first run's true
  median; the second median is itself an estimate, so even when both intervals are exact it falls
  outside about 17% of the time at the 95% level (P(|Z| > 1.96/√2));
- the medians agree within their CIs: their difference is at most the two intervals' half-widths on the
  facing sides combined in quadrature, √(h₁² + h₂²), the 95% interval of a difference of two
  independent estimates. This is the check the method should pass;
- the two intervals overlap (the loosest).

It ends with how many pairs pass each check.

Run: `.venv/bin/python benchmarks/repeatability.py [--pairs 1] [--runtime NAME ...] [--quick]`
(`--quick`: the quick preset's shorter method). Each runtime runs in a fresh process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from dlcompat.metrics.latency import LatencyMethod, LatencyStats, summarize
from harness_overhead import NEEDS, RUNTIMES, SUBJECTS, child_result


def method_of(quick: bool) -> LatencyMethod:
    if not quick:
        return LatencyMethod()
    from dlcompat.study.config import load_preset

    return LatencyMethod.from_dict(load_preset("quick").latency.model_dump())


def figure(stats: LatencyStats) -> dict[str, Any]:
    return {"p50": stats.p50, "low": stats.median_ci_low, "high": stats.median_ci_high, "repeats": stats.repeats,
            "converged": stats.converged, "unmet": list(stats.unmet), "elapsed_s": stats.elapsed_s}


def measure_runtime(name: str, pairs: int, quick: bool) -> dict[str, Any]:
    for module, reason in NEEDS[name]:
        if importlib.util.find_spec(module) is None:
            return {"runtime": name, "skipped": reason}
    method = method_of(quick)
    with tempfile.TemporaryDirectory(prefix="dlcompat-repeat-") as folder:
        try:
            subject = SUBJECTS[name](Path(folder))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return {"runtime": name, "skipped": f"could not load LeNet-5: {type(exc).__name__}: {first}"}
        try:
            out = []
            for _ in range(pairs):
                # as the evaluate job times it: in this process, or in the page for a browser runtime
                first_run = summarize(method=method, **subject.samples(method))
                second_run = summarize(method=method, **subject.samples(method))
                out.append((figure(first_run), figure(second_run)))
            return {"runtime": name, "api": subject.api, "method": method.to_dict(), "pairs": out}
        finally:
            subject.cleanup()


def agreement(first: dict[str, Any], second: dict[str, Any]) -> dict[str, bool]:
    """The three checks of two medians against their CIs (see the module's docstring); empty without CIs."""
    if first["low"] is None or second["low"] is None:
        return {}
    low, high = (first, second) if first["p50"] <= second["p50"] else (second, first)
    combined = math.hypot(low["high"] - low["p50"], high["p50"] - high["low"])  # the facing half-widths
    return {
        "second within first's CI": first["low"] <= second["p50"] <= first["high"],
        "agree within CIs": high["p50"] - low["p50"] <= combined,
        "CIs overlap": first["low"] <= second["high"] and second["low"] <= first["high"],
    }


def verdict(first: dict[str, Any], second: dict[str, Any]) -> str:
    def ci(f: dict[str, Any]) -> str:
        return f"[{f['low'] * 1e3:.2f}–{f['high'] * 1e3:.2f}]" if f["low"] is not None else "[no CI]"

    text = (f"first p50 {first['p50'] * 1e3:.2f} µs {ci(first)} ({first['repeats']} calls), "
            f"second p50 {second['p50'] * 1e3:.2f} µs {ci(second)} ({second['repeats']} calls); "
            f"second/first {second['p50'] / first['p50']:.3f}")
    checks = agreement(first, second)
    if checks:
        text += "; " + "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in checks.items())
    converged = [f["converged"] for f in (first, second)]
    text += "; both converged" if all(converged) else f"; converged: {converged}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1, help="back-to-back pairs per runtime (default 1)")
    parser.add_argument("--runtime", action="append", choices=RUNTIMES, help="only these (repeatable)")
    parser.add_argument("--quick", action="store_true", help="the quick preset's method instead of the default")
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_runtime(args.child, args.pairs, args.quick)))
        return
    method = method_of(args.quick)
    print(f"LeNet-5, batch 1, 1 thread; method: {json.dumps(method.to_dict())}")
    passed: dict[str, int] = {}
    pairs = 0
    for name in args.runtime or RUNTIMES:
        command = [sys.executable, __file__, "--child", name, "--pairs", str(args.pairs)]
        result = child_result(command + (["--quick"] if args.quick else []), name)
        if "skipped" in result:
            print(f"{name:12s} skipped: {result['skipped']}")
            continue
        for first, second in result["pairs"]:
            print(f"{name:12s} {verdict(first, second)}")
            pairs += 1
            for check, ok in agreement(first, second).items():
                passed[check] = passed.get(check, 0) + ok
    if pairs:
        print("pairs passing: " + ", ".join(f"{check} {count}/{pairs}" for check, count in passed.items()))


if __name__ == "__main__":
    main()
