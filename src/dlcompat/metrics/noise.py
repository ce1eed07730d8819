"""A measured noise floor: when is a derived model's tensor "more than noise"?

The reference of a source model is the float64 evaluation of its spec (`dlcompat.zoo.reference.forward`) on the
model's own weights. The *noise floor* of a layer is the largest error, against that reference, of honest float32
re-executions of the source framework's model with the same weights (`measure_noise_floor`):

- ``batch<N>``: all N images in one call; ``batch1``: one image at a time (other kernels, other blockings);
- ``threads=2``: a new adapter instance with two intra-op threads (a fresh model with the same weights), where the
  framework can change its threads in-process (PyTorch can; TensorFlow fixes its pools at first use, and the
  method record says the execution was skipped and why);
- ``mkldnn-off``: PyTorch with ``torch.backends.mkldnn.flags(enabled=False)`` (its native kernels instead of
  oneDNN's), where the framework has such a switch.

A candidate tensor (a converted model's, another runtime's) *exceeds noise* at a layer when its error against the
same float64 reference exceeds ``k`` times that layer's floor (`NoiseFloor.exceeds`). Errors are measured as rmse
by default (PyTorch's compiler accuracy check, `torch._dynamo.utils.same`, uses rmse against an fp64 reference
too); max |delta| and relative L2 are kept beside it (`TensorError`). A floor never falls below
``FP32_EPS * rms(reference)``, the rounding of the reference itself into float32, so a layer that float32 happens
to compute exactly does not make every candidate exceed (an all-zero reference keeps a zero floor: any nonzero
candidate there exceeds).

The choice of k: ``K_NOISE = 2.5``, by measurement (``benchmarks/noise_floor.py``; 2 shared CPU cores, torch
2.13.0+cpu, TensorFlow 2.21.0 / Keras 3.15.1). Cases: LeNet-5 trained 2 epochs on ``digits`` in PyTorch (test
accuracy 0.73-0.89) and ResNet-20 with random weights and batch-norm statistics on CIFAR-10 test images, one
training / weight draw / image window per seed; floors in PyTorch and in Keras holding the same weights; every layer
and the logits. The benign hop is the *other* framework's float32 model on the same weights, as a ratio
(its rmse / the floor's):

==========================  =====  =====  =====  ======  ==================================
images x seeds              hops   max    p99    median  injected faults (ratio at layer)
==========================  =====  =====  =====  ======  ==================================
16 x 5 (seeds 0-4)          770    1.243  1.054  0.691   25/25 first at the faulty layer, >= 460
32 x 3 (seeds 0-2)          462    1.246  1.026  0.704   15/15 first at the faulty layer, >= 458
==========================  =====  =====  =====  ======  ==================================

The largest ratios are against Keras's floor (TensorFlow fixes its threads and oneDNN at start-up, so its floor
has only the batch-N and batch-1 executions; against PyTorch's floor, with threads and mkldnn varied, the maximum
is 1.20). The smallest k that flags no benign hop is thus 1.25, and ``k = MARGIN x 1.25 = 2.5``: the margin of 2
covers what the benchmark did not vary (other models, images, and runtimes' kernels). The injected faults (the
first convolution's weights rounded to float16; LeNet-5's conv2 kernel transposed kh <-> kw; a ResNet-20 batch
norm's eps 1e-5 -> 1e-3, Keras's default, and -> 1.001e-2) sit 458x to 4e6x over their layer's floor, so they
are caught at k = 2.5 with a wide gap, and the first layer over k is the faulty one in every case.

`torch._dynamo.utils.same` passes ``rmse(res, fp64) <= m * rmse(ref, fp64) + tol / 10`` with a fixed ``m = 2``
in float32 (3 for tensors under 1000 elements, 1x1 convolutions or half precision; up to 10 when forced): a fixed
multiplier over the error of *one* fp32 execution. Against one execution (the batch-N one), that rule flags 2 of
the 770 benign hops above without its ``tol / 10`` term; with its default ``tol = 1e-4`` it flags none, but that
absolute slack of 1e-5 exceeds the floor of most of these layers (1e-7 to 2e-5), so it cannot see a fault smaller
than that. Here the floor is the largest error over several honest executions, the multiplier is read off measured
benign hops, and the only absolute guard is float32's rounding of the reference (``FP32_EPS x rms``).

Quantised hops have floors of their own, because their storage rounds more than float32 does:

- **float16** (a hop that stores weights as float16 and computes in float32, LiteRT's fp16 variant): the floor is
  *measured* by rounding the source's weights to float16 and re-executing the float64 reference
  (`float16_floor`): ``weights-fp16`` rounds every canonical parameter, ``weights-fp16-folded`` rounds each
  convolution's weights and bias *after* folding the batch norm that follows it (what a converter that folds
  stores), ``input-fp16`` also rounds the images. The hop's floor per layer is the largest of those and of the
  float32 executions; a tensor exceeds noise over ``k`` x that floor, the same ``k``. A float16 hop is thus
  judged in float16's rounding units: its honest tensors sit near 1x the float16 floor (about 1000x the float32
  one), a fault in it sits far above.
- **int8** (full-integer quantisation: integer tensors with a scale and zero point): a tensor is judged in its
  quantisation steps (`quantisation_steps`: the rmse against the float64 reference divided by the tensor's own
  scale). A tensor rounded to its grid has an rmse of ``1/sqrt(12) ~ 0.289`` steps (`WELL_QUANTISED_STEPS`), the
  figure TFLite's quantisation debugger reads as "well quantised"; deeper tensors carry the rounding of the layers
  before them too. The int8 floor is `INT8_FLOOR_STEPS`, the largest step count measured on honest full-integer
  conversions (``benchmarks/localisation.py``: LeNet-5 on MNIST and ResNet-20 on CIFAR-10 through
  ``keras.tflite``, every aligned tensor); a tensor exceeds noise over ``k`` x that many steps
  (`int8_judgement`).

Measured by ``benchmarks/localisation.py`` (2 shared CPU cores, load 5-10; LeNet-5 trained 1 epoch on 2,000 MNIST
images, 32 test images; ResNet-20 trained 1 epoch on 2,000 CIFAR-10 images, 16 test images; LiteRT through the
``keras.tflite`` edge, int8 calibrated on 100 training images with two calibration draws):

=========================  ====================================  ==============================================
hop                        honest, in the hop's own unit         honest against the float32 floor
=========================  ====================================  ==============================================
LeNet-5 LiteRT fp16        rmse / fp16 floor: max 0.99, med 0.96  max 1455x, median 1179x (floor ratio 1231x)
ResNet-20 LiteRT fp16      rmse / fp16 floor: max 0.67, med 0.58  max 2062x, median 1636x (floor ratio 2975x)
LeNet-5 LiteRT int8 (x2)   0.18-0.45 steps (relu1 ... logits)
ResNet-20 LiteRT int8 (x2) 0.28-1.19 steps (deeper tensors more)
=========================  ====================================  ==============================================

So ``INT8_MEASURED_MAX_STEPS = 1.19`` and the int8 floor is 1.2 steps (exceeds over 2.5 x 1.2 = 3 steps); the
injected faults in those hops (a transposed kernel, a permuted flatten order, a dropped ReLU, an int8 scale x1.5,
x0.6 or x0.25) sit far above (the benchmark prints each one's ratio).

- **int8-dynamic** (LiteRT's dynamic-range quantisation: conv / dense weights stored as int8, activations float,
  the kernels quantising each input on the fly): the floor is *measured* like float16's (`int8_dynamic_floor`): the
  float64 reference re-executed on the weights rounded as the file stores them (per output channel or per tensor as
  its scales say, symmetric, scale = max|w| / 127; a weight the converter left in float, such as TensorFlow's
  tensors under 1024 elements, stays unrounded) (``weights-int8``), and again with each such operator's input
  quantised per image (asymmetric to [-128, 127], as the dynamic-range kernels do: ``inputs-int8-asymmetric``;
  symmetric, as the builtin kernels do without ``asymmetric_quantize_inputs``: ``inputs-int8-symmetric``). The
  floor is the largest of those and of the float32 executions, judged with the same ``k``. Per-channel symmetric
  rounding commutes with a per-channel scaling, so rounding the canonical weights equals rounding a convolution's
  weights after batch-norm folding.

Label-level verdicts (top-1 flips) keep the binomial rule of `dlcompat.metrics.statistics`; this module judges
tensors only.

NumPy only at import time; frameworks are reached only through the adapter objects passed in (and PyTorch's
mkldnn switch, when the adapter passed in is PyTorch's and has therefore imported torch already).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import platform
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: float32's machine epsilon: a floor is never below this times the reference's rms
FP32_EPS = float(np.finfo(np.float32).eps)
#: rmse / scale of a tensor rounded to its quantisation grid (uniform error over one step): 1 / sqrt(12)
WELL_QUANTISED_STEPS = 1.0 / math.sqrt(12.0)
#: the largest benign ratio (candidate rmse / floor rmse) measured by benchmarks/noise_floor.py (see above)
MEASURED_MAX_RATIO = 1.246
#: the safety margin over that maximum (K_NOISE = MARGIN x MEASURED_MAX_RATIO, rounded up to a half)
MARGIN = 2.0
#: a candidate exceeds noise when its error is over K_NOISE x the layer's floor
K_NOISE = 2.5
#: the largest rmse in quantisation steps of any aligned tensor of the honest full-integer conversions measured by
#: benchmarks/localisation.py (see the module's docstring and the benchmark's output): the int8 floor
INT8_MEASURED_MAX_STEPS = 1.19
#: the int8 floor, in quantisation steps: that maximum rounded up to a tenth (a tensor exceeds over k x this)
INT8_FLOOR_STEPS = 1.2
#: the key under which the logits' floor is kept
LOGITS = "logits"
METRICS = ("rmse", "max_abs", "rel_l2")


@dataclass(frozen=True)
class TensorError:
    """The error of one tensor against its float64 reference."""

    max_abs: float  # max |a - ref|
    rel_l2: float  # ||a - ref|| / ||ref|| (inf when the reference is all zeros and a differs)
    rmse: float  # sqrt(mean((a - ref)^2))
    ref_rms: float  # sqrt(mean(ref^2)): the tensor's own scale
    n: int  # elements

    def get(self, metric: str) -> float:
        if metric not in METRICS:
            raise ValueError(f"unknown error metric {metric!r}; one of {', '.join(METRICS)}")
        return float(getattr(self, metric))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorError:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def tensor_error(candidate: np.ndarray, reference: np.ndarray) -> TensorError:
    """max |delta|, relative L2 and rmse of `candidate` against `reference`, in float64 (NaN/inf propagate)."""
    a = np.asarray(candidate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if a.shape != ref.shape:
        raise ValueError(f"shapes differ: candidate {a.shape}, reference {ref.shape}")
    if a.size == 0:
        return TensorError(0.0, 0.0, 0.0, 0.0, 0)
    diff = a - ref
    norm_diff, norm_ref = float(np.linalg.norm(diff.ravel())), float(np.linalg.norm(ref.ravel()))
    rel = norm_diff / norm_ref if norm_ref > 0 else (0.0 if norm_diff == 0 else math.inf)
    return TensorError(
        max_abs=float(np.max(np.abs(diff))),
        rel_l2=rel,
        rmse=norm_diff / math.sqrt(a.size),
        ref_rms=norm_ref / math.sqrt(a.size),
        n=int(a.size),
    )


def quantisation_steps(candidate: np.ndarray, reference: np.ndarray, scale: float | np.ndarray) -> float:
    """The rmse of `candidate` against `reference` in quantisation steps (rmse / scale).

    `scale` is the tensor's quantisation scale: a number, or one per channel (broadcast against the arrays, e.g.
    shape (1, C, 1, 1)), in which case each element's error is divided by its own channel's scale first.
    About 0.289 (`WELL_QUANTISED_STEPS`) is a tensor rounded to its grid; well above it, the quantised tensor
    carries more than its rounding (clipping, a wrong scale or zero point, error from upstream layers)."""
    a = np.asarray(candidate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise ValueError("a quantisation scale must be positive and finite")
    steps = (a - ref) / s
    return float(np.sqrt(np.mean(steps**2))) if steps.size else 0.0


@dataclass
class NoiseFloor:
    """The per-layer floor of one source model (and of its logits, under `LOGITS`), and how it was measured.

    `floors[layer]` holds, for each statistic, the largest value over the honest executions (so `max_abs`,
    `rmse` and `rel_l2` may come from different executions); `executions[name][layer]` keeps each one's own."""

    floors: dict[str, TensorError]
    method: dict[str, Any]
    executions: dict[str, dict[str, TensorError]] = field(default_factory=dict)
    k: float = K_NOISE

    def layers(self) -> list[str]:
        return list(self.floors)

    def floor(self, layer: str, metric: str = "rmse") -> float:
        """The layer's floor in `metric`, never below float32's rounding of the reference (FP32_EPS x rms, or
        FP32_EPS for the relative L2)."""
        if layer not in self.floors:
            raise KeyError(f"no noise floor for layer {layer!r}; measured: {', '.join(self.floors)}")
        err = self.floors[layer]
        guard = FP32_EPS if metric == "rel_l2" else FP32_EPS * err.ref_rms
        return max(err.get(metric), guard)

    def ratio(self, layer: str, candidate: TensorError | float, metric: str = "rmse") -> float:
        """A candidate's error as a multiple of the layer's floor (inf or nan when the candidate's is)."""
        value = candidate.get(metric) if isinstance(candidate, TensorError) else float(candidate)
        floor = self.floor(layer, metric)
        return value / floor if floor > 0 else (0.0 if value == 0 else math.inf)

    def exceeds(self, layer: str, candidate: TensorError | float, metric: str = "rmse",
                k: float | None = None) -> bool:
        """Whether the candidate's error at `layer` exceeds k x its floor (`self.k`, `K_NOISE` by default).
        A non-finite error always exceeds."""
        r = self.ratio(layer, candidate, metric)
        return not math.isfinite(r) or r > (self.k if k is None else k)

    def judge(self, candidates: Mapping[str, TensorError], metric: str = "rmse") -> dict[str, dict[str, Any]]:
        """{layer: {"ratio", "exceeds"}} for each candidate layer with a floor, in the floor's layer order."""
        return {layer: {"ratio": self.ratio(layer, candidates[layer], metric),
                        "exceeds": self.exceeds(layer, candidates[layer], metric)}
                for layer in self.floors if layer in candidates}

    def first_exceeding(self, candidates: Mapping[str, TensorError], metric: str = "rmse") -> str | None:
        """The first layer (in the floor's order, the spec's execution order) whose candidate exceeds noise."""
        return next((layer for layer, v in self.judge(candidates, metric).items() if v["exceeds"]), None)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "method": self.method,
                "floors": {layer: e.to_dict() for layer, e in self.floors.items()},
                "executions": {name: {layer: e.to_dict() for layer, e in errs.items()}
                               for name, errs in self.executions.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseFloor:
        return cls(floors={layer: TensorError.from_dict(e) for layer, e in data["floors"].items()},
                   method=dict(data["method"]),
                   executions={name: {layer: TensorError.from_dict(e) for layer, e in errs.items()}
                               for name, errs in data.get("executions", {}).items()},
                   k=float(data.get("k", K_NOISE)))


def errors_against(reference: tuple[np.ndarray, Mapping[str, np.ndarray]], logits: np.ndarray | None,
                   activations: Mapping[str, np.ndarray]) -> dict[str, TensorError]:
    """{layer: error} of a candidate's activations (and logits, under `LOGITS`) against an fp64 reference
    `(logits, {layer: output})` as `zoo.reference.forward` returns it; layers the reference lacks are skipped."""
    ref_logits, ref_layers = reference
    out = {name: tensor_error(value, ref_layers[name]) for name, value in activations.items() if name in ref_layers}
    if logits is not None:
        out[LOGITS] = tensor_error(logits, ref_logits)
    return out


def run_execution(adapter: Any, model: Any, x: np.ndarray, layers: list[str] | None,
                  per_image: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(logits, {layer: activation}) of `model` on `x` through the adapter: all at once, or one image at a time."""
    if not per_image:
        return (np.asarray(adapter.predict(model, x, batch_size=max(len(x), 1))),
                adapter.activations(model, x, layers))
    logits, acts = [], {}
    for i in range(len(x)):
        logits.append(np.asarray(adapter.predict(model, x[i:i + 1], batch_size=1)))
        for name, value in adapter.activations(model, x[i:i + 1], layers).items():
            acts.setdefault(name, []).append(value)
    return np.concatenate(logits), {name: np.concatenate(parts) for name, parts in acts.items()}


@contextlib.contextmanager
def _mkldnn_off() -> Iterator[None]:
    torch = sys.modules["torch"]
    with warnings.catch_warnings():  # torch 2.13 warns that TF32-on-oneDNN needs an Intel GPU when the flags change
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def kernel_switches(adapter: Any) -> dict[str, Callable[[], contextlib.AbstractContextManager[None]]]:
    """The in-process switches of a framework's optimised kernels: {execution name: context manager factory}."""
    if getattr(adapter, "name", "") == "pytorch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if getattr(torch.backends, "mkldnn", None) is not None and torch.backends.mkldnn.is_available():
            return {"mkldnn-off": _mkldnn_off}
    return {}


#: what the method record says of frameworks whose kernel or thread choice cannot change in-process
_FIXED = {
    "tensorflow": {"kernels": "oneDNN is chosen by TF_ENABLE_ONEDNN_OPTS when TensorFlow is imported: not varied",
                   "threads": "TensorFlow fixes its thread pools at first use in a process"},
}


def measure_noise_floor(adapter: Any, model: Any, spec: Any, weights: Mapping[str, np.ndarray], x: np.ndarray, *,
                        layers: list[str] | None = None, make_adapter: Callable[[int], Any] | None = None,
                        threads: tuple[int, ...] = (2,), seed: int | None = None,
                        reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
                        k: float = K_NOISE) -> NoiseFloor:
    """The noise floor of `model` (the source framework's float32 model, holding `weights`) on images `x`.

    `make_adapter(threads)` makes another adapter of the same framework (default: the adapter's class); one is
    made for each thread count in `threads` other than the adapter's, with a fresh model holding `weights`, and
    the adapter's own thread count is restored afterwards (the frameworks' thread settings are process-wide).
    `reference` is the fp64 `zoo.reference.forward(spec, weights, x)`, computed here when not given. `seed` is
    recorded only (the images' draw, made by the caller)."""
    from dlcompat.zoo.reference import forward

    x = np.ascontiguousarray(x, dtype=np.float32)
    if reference is None:
        reference = forward(spec, weights, x)
    if layers is None:
        layers = [name for name in adapter.activations(model, x[:1]) if name in reference[1]]
    make_adapter = make_adapter or type(adapter)
    framework = getattr(adapter, "name", type(adapter).__name__)
    own_threads = int(getattr(adapter, "threads", 1))
    executions: dict[str, dict[str, TensorError]] = {}
    skipped: dict[str, str] = {}

    def record(name: str, run_adapter: Any, run_model: Any, per_image: bool = False) -> None:
        logits, acts = run_execution(run_adapter, run_model, x, layers, per_image)
        executions[name] = errors_against(reference, logits, acts)

    record(f"batch{len(x)}", adapter, model)
    record("batch1", adapter, model, per_image=True)
    for name, switch in kernel_switches(adapter).items():
        with switch():
            record(name, adapter, model)
    if framework in _FIXED:
        skipped["kernels"] = _FIXED[framework]["kernels"]
    elif not kernel_switches(adapter):
        skipped["kernels"] = f"{framework} has no in-process switch of its optimised kernels known to dlcompat"

    threads_seen = {own_threads: adapter.threads_in_effect()}
    for n in threads:
        if n == own_threads:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            other = make_adapter(n)
        in_effect = other.threads_in_effect()
        threads_seen[n] = in_effect
        if in_effect.get("intra_op_threads") != n:
            reason = _FIXED.get(framework, {}).get("threads") or (
                f"{framework} reports {in_effect.get('intra_op_threads')} intra-op threads after asking for {n}")
            skipped[f"threads={n}"] = reason + "".join(f"; {w.message}" for w in caught)[:400]
            continue
        try:
            other_model = other.build(spec, seed=0)
            other.set_weights(other_model, dict(weights))
            record(f"threads={n}", other, other_model)
        finally:
            make_adapter(own_threads)  # the thread settings are process-wide: put the adapter's back

    method = {
        "reference": "dlcompat.zoo.reference.forward (NumPy float64, the spec's canonical weights)",
        "framework": framework,
        "framework_version": _version(adapter),
        "model": getattr(spec, "name", ""),
        "executions": list(executions),
        "skipped": skipped,
        "threads": {str(n): t for n, t in threads_seen.items()},
        "images": len(x),
        "seed": seed,
        "statistic": "per statistic, the largest over the executions",
        "k": k,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    return NoiseFloor(floors=largest_errors(executions), method=method, executions=executions, k=k)


def int8_judgement(steps: float, k: float = K_NOISE,
                   floor_steps: float = INT8_FLOOR_STEPS) -> tuple[float, bool]:
    """(ratio to the int8 floor, exceeds) of an integer tensor's error in its quantisation steps."""
    ratio = steps / floor_steps
    return ratio, not math.isfinite(ratio) or ratio > k


def rounded_to_float16(spec: Any, weights: Mapping[str, np.ndarray], folded: bool = False) -> dict[str, np.ndarray]:
    """The canonical weights as a float16 store holds them (float64 arrays). With `folded`, each convolution
    followed by a batch norm is rounded as the folded pair (weight x gamma / sqrt(var + eps), and its bias) and
    expressed back in the canonical parameters, the batch norm's kept exact."""
    out = {name: np.asarray(v, np.float64).astype(np.float16).astype(np.float64) for name, v in weights.items()}
    if not folded:
        return out
    from dlcompat.zoo.reference import fold_batch_norm
    from dlcompat.zoo.spec import BatchNorm, Conv2D

    for conv, bn in _conv_bn_pairs(spec.layers, Conv2D, BatchNorm):
        w = np.asarray(weights[f"{conv.name}.weight"], np.float64)
        b = np.asarray(weights.get(f"{conv.name}.bias", np.zeros(len(w))), np.float64)
        folded_w, folded_b, factor = fold_batch_norm(w, b, weights, bn.name, bn.eps)
        w16, b16 = (v.astype(np.float16).astype(np.float64) for v in (folded_w, folded_b))
        beta, mean = (np.asarray(weights[f"{bn.name}.{k}"], np.float64) for k in ("beta", "mean"))
        out[f"{conv.name}.weight"] = w16 / factor.reshape((-1,) + (1,) * (w.ndim - 1))
        out[f"{conv.name}.bias"] = (b16 - beta) / factor + mean
        out.update({f"{bn.name}.{k}": np.asarray(weights[f"{bn.name}.{k}"], np.float64)
                    for k in ("gamma", "beta", "mean", "var")})
    return out


def _conv_bn_pairs(layers: Any, conv_type: type, bn_type: type) -> Iterator[tuple[Any, Any]]:
    for before, after in itertools.pairwise(layers):
        if isinstance(before, conv_type) and isinstance(after, bn_type):
            yield before, after
    for layer in layers:
        for inner in (getattr(layer, "body", ()), getattr(layer, "shortcut", ())):
            yield from _conv_bn_pairs(tuple(inner), conv_type, bn_type)


def float16_floor(base: NoiseFloor, spec: Any, weights: Mapping[str, np.ndarray], x: np.ndarray,
                  reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> NoiseFloor:
    """The floor of a float16-storage hop: `base` (the float32 floor) widened by re-executions of the float64
    reference on the source's weights rounded to float16 (as stored, and as stored after batch-norm folding) and
    on the images rounded to float16 as well (see the module's docstring)."""
    from dlcompat.zoo.reference import forward

    if reference is None:
        reference = forward(spec, weights, x)
    layers = set(base.floors) - {LOGITS}
    executions = dict(base.executions)
    x16 = np.asarray(x, np.float32).astype(np.float16).astype(np.float64)
    for name, w, images in (("weights-fp16", rounded_to_float16(spec, weights), x),
                            ("weights-fp16-folded", rounded_to_float16(spec, weights, folded=True), x),
                            ("input-fp16", rounded_to_float16(spec, weights), x16)):
        logits, acts = forward(spec, w, images)
        executions[name] = errors_against(reference, logits, {k: v for k, v in acts.items() if k in layers})
    method = dict(base.method, executions=list(executions), float16=(
        "float32 executions and the float64 reference re-executed on float16-rounded weights (as stored; as stored "
        "after batch-norm folding) and images"))
    return NoiseFloor(floors=largest_errors(executions), method=method, executions=executions, k=base.k)


def rounded_to_int8(weights: Mapping[str, np.ndarray],
                    quantised: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The canonical weights (float64) with each layer of `quantised` ({layer: {"scale": [...]}} as the file's
    integer weights carry them) rounded to symmetric int8: per output channel where the file has one scale per
    channel, else per tensor, scale = max|w| / 127."""
    out = {name: np.asarray(v, np.float64) for name, v in weights.items()}
    for layer, q in quantised.items():
        w = out.get(f"{layer}.weight")
        if w is None:
            continue
        axes = tuple(range(1, w.ndim)) if len(q.get("scale", ())) > 1 else tuple(range(w.ndim))
        scale = np.max(np.abs(w), axis=axes, keepdims=True) / 127.0
        scale = np.where(scale > 0, scale, 1.0)
        out[f"{layer}.weight"] = np.clip(np.round(w / scale), -127, 127) * scale
    return out


def quantise_per_image(x: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """`x` (N, ...) quantised to int8 and back, one scale per image (a dynamic-range kernel's input): asymmetric
    over [min(x, 0), max(x, 0)] -> [-128, 127], or symmetric (max|x| -> 127)."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    if symmetric:
        scale = np.max(np.abs(flat), axis=1, keepdims=True) / 127.0
        scale = np.where(scale > 0, scale, 1.0)
        return (np.clip(np.round(flat / scale), -127, 127) * scale).reshape(np.shape(x))
    lo, hi = np.minimum(flat.min(axis=1, keepdims=True), 0.0), np.maximum(flat.max(axis=1, keepdims=True), 0.0)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
    zero = np.round(-128.0 - lo / scale)
    q = np.clip(np.round(flat / scale) + zero, -128, 127)
    return ((q - zero) * scale).reshape(np.shape(x))


def forward_dynamic(spec: Any, weights: Mapping[str, np.ndarray], x: np.ndarray, hybrid: set[str],
                    symmetric: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The float64 reference with the input of each layer in `hybrid` quantised per image (`quantise_per_image`)."""
    from dlcompat.zoo import reference
    from dlcompat.zoo.spec import Residual

    w = {name: np.asarray(v, np.float64) for name, v in weights.items()}
    seen: dict[str, np.ndarray] = {}

    def run(layers: Any, a: np.ndarray) -> np.ndarray:
        for layer in layers:
            if isinstance(layer, Residual):
                body = run(layer.body, a)
                a = reference.activation(body + (run(layer.shortcut, a) if layer.shortcut else a), layer.activation)
            else:
                a = reference._step(layer, quantise_per_image(a, symmetric) if layer.name in hybrid else a, w, seen)
            seen[layer.name] = a
        return a

    logits = run(spec.layers, np.asarray(x, np.float64).transpose(0, 3, 1, 2))
    return logits, seen


def int8_dynamic_floor(base: NoiseFloor, spec: Any, weights: Mapping[str, np.ndarray], x: np.ndarray,
                       quantised: Mapping[str, Mapping[str, Any]],
                       reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> NoiseFloor:
    """The floor of a dynamic-range int8 hop: `base` widened by the float64 reference on the weights rounded as the
    file stores them (`quantised`: {layer: its integer weights' scales}), with and without each such layer's input
    quantised per image (see the module's docstring)."""
    from dlcompat.zoo.reference import forward

    if reference is None:
        reference = forward(spec, weights, x)
    layers = set(base.floors) - {LOGITS}
    executions = dict(base.executions)
    w8 = rounded_to_int8(weights, quantised)
    runs = {"weights-int8": forward(spec, w8, x),
            "inputs-int8-asymmetric": forward_dynamic(spec, w8, x, set(quantised)),
            "inputs-int8-symmetric": forward_dynamic(spec, w8, x, set(quantised), symmetric=True)}
    for name, (logits, acts) in runs.items():
        executions[name] = errors_against(reference, logits, {k: v for k, v in acts.items() if k in layers})
    method = dict(base.method, executions=list(executions), int8_dynamic=(
        "float32 executions and the float64 reference re-executed on the weights rounded to int8 as the file stores "
        f"them ({', '.join(sorted(quantised)) or 'none'}), with their inputs quantised per image and without"))
    return NoiseFloor(floors=largest_errors(executions), method=method, executions=executions, k=base.k)


def largest_errors(executions: Mapping[str, Mapping[str, TensorError]]) -> dict[str, TensorError]:
    """{layer: each statistic's largest value over the executions}, layers in the first execution's order."""
    floors: dict[str, TensorError] = {}
    for layer in dict.fromkeys(name for errs in executions.values() for name in errs):
        errs = [e[layer] for e in executions.values() if layer in e]
        floors[layer] = TensorError(
            max_abs=max(e.max_abs for e in errs), rel_l2=max(e.rel_l2 for e in errs),
            rmse=max(e.rmse for e in errs), ref_rms=errs[0].ref_rms, n=errs[0].n)
    return floors


def _version(adapter: Any) -> str:
    try:
        return str(adapter.version())
    except Exception:  # the record says unknown rather than failing the measurement
        return "unknown"
