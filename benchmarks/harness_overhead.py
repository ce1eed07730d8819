"""Benchmark: dlcompat's latency harness against a bare loop over the same runtime, model and API.

For every runtime present — PyTorch, ONNX Runtime, JAX (Flax), Keras on TensorFlow, LiteRT, ExecuTorch, and
ONNX Runtime Web and TensorFlow.js in headless Chromium — LeNet-5 at batch 1 on one thread, loaded through
dlcompat's own runner exactly as the evaluate job loads it. dlcompat times the runner's `predictor` with
`metrics.latency.collect_samples` (the browser runners time themselves in the page, `timings`); the bare loops
call the runtime's API directly, inlined in a `for` loop (the runtime's fastest idiom, which is also what the
predictor calls):

  pytorch      with torch.inference_mode(): model(x)
  onnxruntime  session.run(outputs, feed)
  jax          forward(params, rest, x).block_until_ready()   (the adapter's own jitted forward)
  tensorflow   forward(x)        (the concrete function of a tf.function of model(x, training=False), as the adapter)
  litert       set_tensor(input, x); invoke(); get_tensor(output)       (ai-edge-litert Interpreter, fp32 from Keras)
  executorch   execute([x])      (executorch.runtime Method, XNNPACK fp32 from PyTorch)
  ortweb       await session.run(feeds)                   (in the page, wasm backend, one thread)
  tfjs         y = model.predict(x); await y.data(); y.dispose()   (in the page, wasm backend)

Figures, each a ratio dlcompat / bare measured in the same process, in interleaved rounds whose order
rotates, so that a shared machine's drift hits both sides alike:

- block: the median over blocks of K consecutive calls (about 0.25 ms each) of the time per call. dlcompat's
  blocks are sums of its per-call samples; the bare loop reads the clock around each block only
  (`timeit`, with the garbage collector left on, as dlcompat leaves it). Same estimator on both sides:
  the ratio is what dlcompat adds inside a sample (two clock reads, the predictor's closure). Target <= 1.03.
- p50: dlcompat's median per-call time / the median of a bare loop timing each call with perf_counter_ns.
- timer (PyTorch only): dlcompat's block median / torch.utils.benchmark.Timer's median over blocks of the
  same K calls (`Timer.timeit(number=K)`); autorange: the same over `Timer.blocked_autorange()`, whose
  blocks last 10 ms or more — on a shared machine those are preempted, and the ratio then measures the
  scheduler, not the harness.

The browser runtimes have no per-call bare loop (their only clock is the page's `performance.now()`, the one
dlcompat uses): their figure is the block ratio, the in-page bare loop `bareBlocks` of the page module against
dlcompat's in-page samples summed in blocks.

Each runtime runs in a fresh process (thread pools and XLA flags are set once per process). Runtimes
whose framework, adapter module or exporter is missing are skipped and say why.

Run: `.venv/bin/python benchmarks/harness_overhead.py [--rounds 5] [--seconds 0.5] [--runtime NAME ...]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

RUNTIMES = ("pytorch", "onnxruntime", "jax", "tensorflow", "litert", "executorch", "ortweb", "tfjs")
BROWSER_NEEDS = [("playwright", "playwright is not installed")]
#: what each runtime needs: (import name, what to say when it is missing)
NEEDS: dict[str, list[tuple[str, str]]] = {
    "pytorch": [("torch", "torch is not installed"), ("dlcompat.frameworks.pytorch", "no PyTorch adapter module")],
    "onnxruntime": [("onnxruntime", "onnxruntime is not installed"),
                    ("torch", "torch is not installed (the ONNX model is exported from PyTorch)"),
                    ("onnxscript", "onnxscript is not installed (torch.onnx's dynamo exporter needs it)")],
    "jax": [("flax", "flax is not installed"),
            ("dlcompat.frameworks.jax", "the JAX adapter module dlcompat.frameworks.jax does not exist yet")],
    "tensorflow": [("tensorflow", "tensorflow is not installed"),
                   ("dlcompat.frameworks.tensorflow",
                    "the Keras adapter module dlcompat.frameworks.tensorflow does not exist yet")],
    "litert": [("tensorflow", "tensorflow is not installed (the .tflite model is converted from Keras)"),
               ("ai_edge_litert", "ai-edge-litert is not installed")],
    "executorch": [("torch", "torch is not installed"), ("executorch", "executorch is not installed")],
    "ortweb": [("torch", "torch is not installed (the ONNX model is exported from PyTorch)"),
               ("onnxscript", "onnxscript is not installed (torch.onnx's dynamo exporter needs it)"), *BROWSER_NEEDS],
    "tfjs": [("tensorflow", "tensorflow is not installed (the model is converted from Keras)"), *BROWSER_NEEDS],
}


@dataclass
class Subject:
    """One runtime under test: dlcompat's predictor, and the bare statement with its namespace."""

    api: str
    call: Callable[[], Any]  # dlcompat's: runner.predictor(x)
    stmt: str  # the bare loop's body: the runtime's API, called directly
    namespace: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] = lambda: None
    #: where the runner times itself (a browser page): method -> `metrics.latency.summarize` keyword arguments
    timings: Callable[[Any], dict[str, Any]] | None = None
    #: and its bare loop, in the same place: (seconds, block, per-call ns) -> ns per call of each block
    blocks: Callable[[float, int, float], np.ndarray] | None = None

    def samples(self, method: Any) -> dict[str, Any]:
        """dlcompat's measurement by `method`: `summarize`'s keyword arguments (per-call samples in ns)."""
        from dlcompat.metrics.latency import collect_samples

        return self.timings(method) if self.timings else collect_samples(self.call, method).as_kwargs()


# -- subjects: loaded through dlcompat's runners, as the evaluate job loads them ------------------------------


def _spec_and_input() -> tuple[Any, np.ndarray]:
    from dlcompat.zoo.registry import build_spec

    spec = build_spec("lenet5", (28, 28, 1), 10)
    x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    return spec, x


def _native(framework: str, folder: Path) -> tuple[Any, Any, np.ndarray]:
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.runtimes.native import NativeRunner

    spec, x = _spec_and_input()
    adapter = make_adapter(framework, threads=1)
    path = folder / f"lenet5{adapter.native_suffix}"
    adapter.save(adapter.build(spec, seed=0), path)
    runner = NativeRunner(path, threads=1, framework=framework, spec=spec)
    runner.activate()
    return runner, spec, x


def subject_pytorch(folder: Path) -> Subject:
    import torch

    runner, _, x = _native("pytorch", folder)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return Subject(runner.info()["api"], runner.predictor(x), "with torch.inference_mode():\n    model(xt)",
                   {"torch": torch, "model": runner.model, "xt": xt}, runner.info(), runner.deactivate)


def subject_onnxruntime(folder: Path) -> Subject:
    from dlcompat.frameworks.pytorch import PyTorchAdapter
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

    spec, x = _spec_and_input()
    adapter = PyTorchAdapter(threads=1)
    path = folder / "lenet5.onnx"
    facts = adapter.export(adapter.build(spec, seed=0), spec, "onnx", path, "dynamo")
    runner = OnnxRuntimeRunner(path, input_layout=facts["input_layout"], threads=1)
    runner.activate()
    feed = {runner.input_name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
    return Subject(runner.info()["api"], runner.predictor(x), "run(outputs, feed)",
                   {"run": runner.session.run, "outputs": [runner.output_name], "feed": feed},
                   runner.info(), runner.deactivate)


def subject_jax(folder: Path) -> Subject:
    import jax

    from dlcompat.frameworks.jax import _program  # the adapter's own jitted forward: the same compiled program

    runner, _, x = _native("jax", folder)
    program, params, rest = _program(runner.model)
    xd = jax.device_put(x, jax.devices("cpu")[0])
    program.forward(params, rest, xd).block_until_ready()
    return Subject(runner.info()["api"], runner.predictor(x), "forward(params, rest, xd).block_until_ready()",
                   {"forward": program.forward, "params": params, "rest": rest, "xd": xd}, runner.info(),
                   runner.deactivate)


def subject_tensorflow(folder: Path) -> Subject:
    import tensorflow as tf

    runner, spec, x = _native("tensorflow", folder)
    model = runner.model
    forward = tf.function(lambda xb: model(xb, training=False), autograph=False,
                          input_signature=[tf.TensorSpec((None, *spec.input_shape), tf.float32)]
                          ).get_concrete_function()  # as the adapter: no per-call tf.function dispatch
    xt = tf.constant(x)
    forward(xt)
    return Subject(runner.info()["api"], runner.predictor(x), "forward(xt)", {"forward": forward, "xt": xt},
                   runner.info(), runner.deactivate)


def _converted(edge_name: str, framework: str, variant: str, folder: Path) -> tuple[Path, dict[str, Any], np.ndarray]:
    """LeNet-5 of `framework` converted by the edge `edge_name`, in the edge's own toolchain environment."""
    from dlcompat.converters.graph import converter
    from dlcompat.envs.registry import get_env
    from dlcompat.frameworks.registry import make_adapter

    spec, x = _spec_and_input()
    adapter = make_adapter(framework, threads=1)
    source = folder / f"lenet5{adapter.native_suffix}"
    adapter.save(adapter.build(spec, seed=0), source)
    edge = converter(edge_name)
    target = folder / f"lenet5-{variant}{edge.suffix}"
    env = get_env(edge.env)
    if not env.exists():
        raise RuntimeError(f"the {edge.env} environment is not built: run `dlcompat env sync {edge.env}`")
    script = ("import json, sys\nfrom pathlib import Path\n"
              "from dlcompat.converters.graph import converter, convert_file\n"
              "from dlcompat.zoo.registry import build_spec\n"
              f"facts = convert_file(converter({edge_name!r}), Path(sys.argv[1]), Path(sys.argv[2]), "
              f"spec=build_spec('lenet5', (28, 28, 1), 10), variant={variant!r}, threads=1)\n"
              "print(json.dumps({k: v for k, v in facts.items() if isinstance(v, str | int | float)}))\n")
    done = subprocess.run([str(env.interpreter()), "-c", script, str(source), str(target)], capture_output=True,
                          text=True, env=env.worker_environ(1))
    if done.returncode != 0:
        raise RuntimeError(f"{edge_name} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return target, json.loads(done.stdout.strip().splitlines()[-1]), x


def subject_litert(folder: Path) -> Subject:
    from dlcompat.runtimes.litert import LiteRTRunner

    path, facts, x = _converted("keras.tflite", "tensorflow", "fp32", folder)
    runner = LiteRTRunner(path, input_layout=facts.get("input_layout", "NHWC"), threads=1)
    runner.activate()
    call = runner.predictor(x)
    interpreter = runner.interpreter
    data = np.ascontiguousarray(x.astype(np.float32))
    return Subject(runner.info()["api"], call, "set_tensor(source, data)\ninvoke()\nget_tensor(index)",
                   {"set_tensor": interpreter.set_tensor, "invoke": interpreter.invoke,
                    "get_tensor": interpreter.get_tensor, "source": runner.input["index"],
                    "index": runner.output["index"], "data": data}, runner.info(), runner.deactivate)


def subject_executorch(folder: Path) -> Subject:
    import torch

    from dlcompat.runtimes.executorch import ExecuTorchRunner

    path, facts, x = _converted("torch.pte", "pytorch", "fp32", folder)
    runner = ExecuTorchRunner(path, input_layout=facts.get("input_layout", "NCHW"), threads=1)
    runner.activate()
    call = runner.predictor(x)
    inputs = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))]
    return Subject(runner.info()["api"], call, "execute(inputs)", {"execute": runner.method.execute, "inputs": inputs},
                   runner.info(), runner.deactivate)


def _browser_subject(runner: Any, x: np.ndarray) -> Subject:
    runner.activate()
    call = runner.predictor(x)  # places the input as "predict"; timings and bareBlocks use "latency"
    runner._put_input("latency", x)

    def timings(method: Any) -> dict[str, Any]:
        return runner.timings(x, method.to_dict())

    def blocks(seconds: float, block: int, per_call_ns: float) -> np.ndarray:
        count = max(int(seconds * 1e9 / (per_call_ns * block)), 20)
        return np.asarray(runner.call("bareBlocks", "latency", block, count), dtype=np.float64) * 1e6

    info = runner.info()
    return Subject(info["api"], call, "", {}, {**info, "intra_op_threads": info.get("threads"),
                                             "inter_op_threads": 1}, runner.deactivate, timings, blocks)


def subject_ortweb(folder: Path) -> Subject:
    from dlcompat.frameworks.pytorch import PyTorchAdapter
    from dlcompat.runtimes.browser.runner import OrtWebRunner

    spec, x = _spec_and_input()
    adapter = PyTorchAdapter(threads=1)
    path = folder / "lenet5.onnx"
    facts = adapter.export(adapter.build(spec, seed=0), spec, "onnx", path, "dynamo")
    return _browser_subject(OrtWebRunner(path, input_layout=facts["input_layout"], threads=1, variant="wasm"), x)


def subject_tfjs(folder: Path) -> Subject:
    from dlcompat.runtimes.browser.runner import TfjsRunner

    path, facts, x = _converted("keras.tfjs", "tensorflow", "none", folder)
    return _browser_subject(TfjsRunner(path, input_layout=facts.get("input_layout", "NHWC"), threads=1,
                                       variant="wasm"), x)


SUBJECTS: dict[str, Callable[[Path], Subject]] = {
    "pytorch": subject_pytorch,
    "onnxruntime": subject_onnxruntime,
    "jax": subject_jax,
    "tensorflow": subject_tensorflow,
    "litert": subject_litert,
    "executorch": subject_executorch,
    "ortweb": subject_ortweb,
    "tfjs": subject_tfjs,
}


# -- the bare loops --------------------------------------------------------------------------------------------

_PER_CALL = """
def _loop(_n, _out, _clock):
    for _i in range(_n):
        _t0 = _clock()
{body}
        _out[_i] = _clock() - _t0
"""


def bare_per_call(subject: Subject, seconds: float, per_call_ns: float) -> np.ndarray:
    """Per-call times of the API called directly, each between two perf_counter_ns reads."""
    namespace = dict(subject.namespace)
    exec(_PER_CALL.format(body=textwrap.indent(subject.stmt, " " * 8)), namespace)  # our own text, not input
    n = max(int(seconds * 1e9 / per_call_ns), 100)
    out = np.empty(n, dtype=np.int64)
    namespace["_loop"](n, out, time.perf_counter_ns)
    return out


def bare_blocks(subject: Subject, seconds: float, block: int, per_call_ns: float) -> np.ndarray:
    """Time per call (ns) of blocks of `block` calls, the clock read around each block only (timeit)."""
    timer = timeit.Timer(subject.stmt, setup="import gc; gc.enable()", timer=time.perf_counter_ns,
                         globals=dict(subject.namespace))
    blocks = max(int(seconds * 1e9 / (per_call_ns * block)), 20)
    return np.asarray(timer.repeat(repeat=blocks, number=block), dtype=np.float64) / block


def torch_timer(subject: Subject, seconds: float, block: int, per_call_ns: float) -> tuple[float, float]:
    """torch.utils.benchmark.Timer's median time per call (ns): over blocks of `block` calls (`Timer.timeit`),
    and with its own choice of block (`blocked_autorange`, blocks of 10 ms or more)."""
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt=subject.stmt, globals=dict(subject.namespace), num_threads=1)
    blocks = max(int(seconds / 2 * 1e9 / (per_call_ns * block)), 20)
    ours = float(np.median([timer.timeit(number=block).median for _ in range(blocks)]) * 1e9)
    return ours, float(timer.blocked_autorange(min_run_time=seconds / 2).median * 1e9)


def block_means(samples_ns: np.ndarray, block: int) -> np.ndarray:
    usable = len(samples_ns) // block * block
    return samples_ns[:usable].reshape(-1, block).sum(axis=1) / block


# -- one runtime, in its own process ----------------------------------------------------------------------------


def measure_runtime(name: str, rounds: int, seconds: float) -> dict[str, Any]:
    from dlcompat.metrics.latency import LatencyMethod, summarize

    for module, reason in NEEDS[name]:
        if importlib.util.find_spec(module) is None:
            return {"runtime": name, "skipped": reason}
    with tempfile.TemporaryDirectory(prefix="dlcompat-harness-") as folder:
        try:
            subject = SUBJECTS[name](Path(folder))
        except Exception as exc:  # an adapter being written, an exporter that fails: say so, go on
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return {"runtime": name, "skipped": f"could not load LeNet-5: {type(exc).__name__}: {first}"}
        try:
            method = LatencyMethod(batch_size=1, warmup=10, warmup_time_s=0.1, min_repeats=100, min_time_s=seconds,
                                   max_time_s=seconds + 10.0)
            warm = summarize(method=method, **subject.samples(method))
            per_call = warm.p50 * 1e6
            block = max(1, round(2.5e5 / per_call))  # about 0.25 ms per block: short, so few are preempted
            if subject.blocks:  # in the page: a block of 1 ms or more, above the page clock's resolution
                block = max(1, round(1e6 / per_call))
            phases = ["dlcompat", "bare_blocks"] + ([] if subject.blocks else ["bare_per_call"]) \
                + (["torch_timer"] if name == "pytorch" else [])
            results: list[dict[str, float]] = []
            for r in range(rounds):
                got: dict[str, Any] = {}
                for phase in phases[r % len(phases):] + phases[: r % len(phases)]:  # rotate the order
                    if phase == "dlcompat":
                        got[phase] = subject.samples(method)
                    elif phase == "bare_blocks":
                        got[phase] = (subject.blocks or partial(bare_blocks, subject))(seconds, block, per_call)
                    elif phase == "bare_per_call":
                        got[phase] = bare_per_call(subject, seconds, per_call)
                    else:
                        got[phase] = torch_timer(subject, seconds, block, per_call)
                dl = np.asarray(got["dlcompat"]["samples_ns"])
                dl_block = float(np.median(block_means(dl, block)))
                row = {
                    "dlcompat_p50_us": float(np.median(dl)) / 1e3,
                    "dlcompat_block_us": dl_block / 1e3,
                    "bare_block_us": float(np.median(got["bare_blocks"])) / 1e3,
                    "block": dl_block / float(np.median(got["bare_blocks"])),
                    "converged": summarize(method=method, **got["dlcompat"]).converged,
                }
                if "bare_per_call" in got:
                    row.update(bare_p50_us=float(np.median(got["bare_per_call"])) / 1e3,
                               p50=float(np.median(dl)) / float(np.median(got["bare_per_call"])))
                if "torch_timer" in got:
                    timer, autorange = got["torch_timer"]
                    row.update(timer_us=timer / 1e3, timer=dl_block / timer, autorange_us=autorange / 1e3,
                               autorange=dl_block / autorange)
                results.append(row)
            info = {k: subject.info.get(k) for k in ("version", "intra_op_threads", "inter_op_threads")}
            return {"runtime": name, "api": subject.api, "block_size": block, "rounds": results, "info": info}
        finally:
            subject.cleanup()


# -- the driver ------------------------------------------------------------------------------------------------


def child_result(command: list[str], name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measuring process; its result is the JSON object on its last line of output, or, where it
    failed, `{"runtime": name, "skipped": why}` with the last line it wrote to standard error."""
    child = subprocess.run(command, capture_output=True, text=True, env=env)
    try:
        return json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"runtime": name, "skipped": f"the measuring process failed: {tail}"}


def summarize_rounds(rounds: list[dict[str, float]], key: str) -> str:
    values = sorted(r[key] for r in rounds if key in r)
    if not values:
        return ""
    return f"{key} {float(np.median(values)):.3f} [{values[0]:.3f}–{values[-1]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per runtime (default 5)")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per phase and round (default 0.5)")
    parser.add_argument("--runtime", action="append", choices=RUNTIMES, help="only these (repeatable)")
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_runtime(args.child, args.rounds, args.seconds)))
        return

    from dlcompat.metrics.latency import LatencyMethod, measure_latency

    floor = measure_latency(lambda: None, LatencyMethod(warmup_time_s=0.05, min_time_s=0.2))
    print(f"LeNet-5, batch 1, 1 thread; {args.rounds} interleaved rounds of {args.seconds:g} s per phase; "
          "ratios are dlcompat / bare, median [min–max] over rounds; target <= 1.03")
    print(f"dlcompat's floor: a no-op call measures p50 {floor.p50 * 1e6:.0f} ns, min {floor.min * 1e6:.0f} ns "
          "(two clock reads and one Python call: the most it adds inside a sample)")
    verdicts = []
    for name in args.runtime or RUNTIMES:
        result = child_result([sys.executable, __file__, "--child", name, "--rounds", str(args.rounds),
                               "--seconds", str(args.seconds)], name)
        if "skipped" in result:
            print(f"{name:12s} skipped: {result['skipped']}")
            continue
        rounds = result["rounds"]
        p50 = float(np.median([r["dlcompat_p50_us"] for r in rounds]))
        bare = float(np.median([r["bare_block_us"] for r in rounds]))
        block = float(np.median([r["block"] for r in rounds]))
        figures = ", ".join(filter(None, (summarize_rounds(rounds, k) for k in ("block", "p50", "timer", "autorange"))))
        converged = sum(r["converged"] for r in rounds)
        print(f"{name:12s} {figures}  | dlcompat p50 {p50:.1f} µs, bare {bare:.1f} µs/call, "
              f"blocks of {result['block_size']}, converged {converged}/{len(rounds)}, "
              f"threads {result['info'].get('intra_op_threads')}/{result['info'].get('inter_op_threads')} "
              f"| {result['api']}")
        verdict = f"{name} block {block:.3f} {'meets' if block <= 1.03 else 'MISSES'}"
        if all("p50" in r for r in rounds):
            p50_ratio = float(np.median([r["p50"] for r in rounds]))
            verdict += f", p50 {p50_ratio:.3f} {'meets' if p50_ratio <= 1.03 else 'MISSES'}"
        verdicts.append(verdict)
    if verdicts:
        print("target <= 1.03: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
