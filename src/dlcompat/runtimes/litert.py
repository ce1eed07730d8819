"""LiteRT runner: ai-edge-litert's `Interpreter`, `set_tensor` then `invoke()`, as an app on a phone calls it.

The interpreter runs with the thread budget of the job (a phone's big core: 1 by default) and its
default op resolver, which hands the graph to the XNNPACK delegate where XNNPACK supports it; `info()`
says whether it did (the delegate partitions in the interpreter's execution plan).

A full-integer model takes and returns integers. Its input's scale and zero point are read from the
model, and the float images are quantized with them (``q = round(x / scale) + zero_point``, clipped to
the integer type) in `predictor`, before any clock starts; the integer logits are dequantized
(``(q - zero_point) * scale``) after it: the timed call is `set_tensor` (the copy of the prepared
input into the interpreter, as an app does per inference), `invoke()` and the copy of the raw output.

Intermediate tensors come from a second interpreter of the same file that keeps every tensor and runs
the builtin kernels only (inside an XNNPACK partition the tensors are the delegate's own, not readable):
its values may differ from the delegated run's by float rounding. A quantized tensor is dequantized with
its own scale and zero point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError, one_line
from dlcompat.runtimes.base import Loader, Runner, require_tensors, to_layout
from dlcompat.versions import installed_version

_BATCH = 256


@dataclass(frozen=True)
class Quantization:
    """An integer tensor's affine quantization, as the model declares it: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int
    dtype: np.dtype

    @classmethod
    def of(cls, detail: dict[str, Any]) -> Quantization | None:
        """From an interpreter's tensor details; None for a float tensor."""
        dtype = np.dtype(detail["dtype"])
        if not np.issubdtype(dtype, np.integer):
            return None
        params = detail.get("quantization_parameters") or {}
        scales, zeros = np.atleast_1d(params.get("scales", [])), np.atleast_1d(params.get("zero_points", []))
        if scales.size == 0:
            scale, zero = detail["quantization"]
            scales, zeros = np.array([scale]), np.array([zero])
        if scales.size != 1 or float(scales[0]) == 0.0:
            raise ModelFileError(f"tensor {detail.get('name')!r} is {dtype} without one per-tensor scale "
                                 f"({scales.size} scales): dlcompat cannot feed it float images")
        return cls(float(scales[0]), int(zeros[0]), dtype)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        info = np.iinfo(self.dtype)
        scaled = x.astype(np.float64) / self.scale
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # TFLite rounds half away from zero
        return np.clip(rounded + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype.name}


class QuantizedOutput:
    """The raw integer output of a timed call; NumPy reads it as the dequantized logits (after the clock)."""

    def __init__(self, values: np.ndarray, quantization: Quantization) -> None:
        self.values = values
        self.quantization = quantization

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.quantization.dequantize(self.values)
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class InterpreterFromTflite(Loader):
    """A LiteRT `Interpreter` of the `.tflite` file at `path`, tensors allocated, with `threads` threads.

    By default the interpreter applies the default delegate (XNNPACK) where it supports the graph. With
    `preserve_all_tensors` it runs the builtin kernels only and keeps every tensor readable after `invoke()`
    (a delegate's partition hides the tensors inside it): the interpreter of intermediate tensors.
    """

    path: Path
    threads: int = 1
    preserve_all_tensors: bool = False

    def __call__(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO
        if self.preserve_all_tensors:
            resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads,
                                      experimental_op_resolver_type=resolver,
                                      experimental_preserve_all_tensors=self.preserve_all_tensors)
            interpreter.allocate_tensors()  # the default delegate (XNNPACK) is applied here
        except Exception as exc:  # the interpreter raises ValueError or RuntimeError, its bindings others
            raise ModelFileError(f"{self.path} is not a loadable LiteRT model ({one_line(exc)}): "
                                 "convert it again") from exc
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFileError(f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs: "
                                 "dlcompat runs image classifiers with one of each")
        return interpreter


class LiteRTRunner(Runner):
    """`session` is the interpreter; intermediate tensors come from a second one that preserves all tensors."""

    name = "litert"

    def loader(self) -> InterpreterFromTflite:
        """`kernels="reference"` (an option): the builtin kernels, without the XNNPACK delegate."""
        return InterpreterFromTflite(self.path, self.threads,
                                     preserve_all_tensors=self.options.get("kernels") == "reference")

    def activate(self) -> None:
        super().activate()
        self.input, self.output = self.session.get_input_details()[0], self.session.get_output_details()[0]
        self.input_quantization = Quantization.of(self.input)
        self.output_quantization = Quantization.of(self.output)
        self.batch = int(self.input["shape"][0])
        #: a model exported for one batch size (litert-torch's) cannot be resized: it runs that many at a time
        self.static_batch = int(self.input.get("shape_signature", self.input["shape"])[0]) != -1
        self._taps: Any = None

    def release(self, session: Any) -> None:
        self._taps = None

    def _place(self, x: np.ndarray, interpreter: Any = None) -> np.ndarray:
        """Resize `interpreter` (the session by default) to `x`'s batch (re-planning its memory and delegate) and
        set the input; returns the input as the interpreter takes it (layout, dtype, quantized)."""
        interpreter = self.session if interpreter is None else interpreter
        data = to_layout(x, self.input_layout)
        if self.input_quantization is not None:
            data = self.input_quantization.quantize(data)
        else:
            data = data.astype(np.float32, copy=False)
        if data.shape[0] != int(interpreter.get_input_details()[0]["shape"][0]):
            if self.static_batch:
                raise ValueError(f"{self.path.name} takes batches of exactly {self.batch} image(s) (a static batch), "
                                 f"not {data.shape[0]}: set the latency batch_size to {self.batch}")
            interpreter.resize_tensor_input(self.input["index"], list(data.shape), strict=False)
            interpreter.allocate_tensors()
        interpreter.set_tensor(self.input["index"], data)
        return data

    def _logits(self, raw: np.ndarray) -> np.ndarray:
        if self.output_quantization is not None:
            return self.output_quantization.dequantize(raw)
        return np.asarray(raw, dtype=np.float32)

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        """`set_tensor` + `invoke()` on `x`, converted and quantized here, before any clock; returns the raw
        output (float, or `QuantizedOutput`).

        Valid until the next `predictor` or `infer`, which may resize the interpreter.
        """
        data = self._place(x)
        put, invoke, get = self.session.set_tensor, self.session.invoke, self.session.get_tensor
        source, index, quantization = self.input["index"], self.output["index"], self.output_quantization
        if quantization is None:
            def call() -> Any:
                put(source, data)
                invoke()
                return get(index)
        else:
            def call() -> Any:
                put(source, data)
                invoke()
                return QuantizedOutput(get(index), quantization)
        return call

    def infer(self, x: np.ndarray, batch_size: int = _BATCH) -> np.ndarray:
        step = self.batch if self.static_batch else batch_size
        out = []
        for start in range(0, len(x), step):
            self._place(x[start : start + step])
            self.session.invoke()
            out.append(self._logits(self.session.get_tensor(self.output["index"])))
        return np.concatenate(out).astype(np.float32)

    # ------------------------------------------------------------------ intermediate tensors

    def _tap_interpreter(self) -> Any:
        if self._taps is None:
            self._taps = InterpreterFromTflite(self.path, self.threads, preserve_all_tensors=True)()
        return self._taps

    def _computed(self) -> dict[str, dict[str, Any]]:
        """Tensor name -> details, for the per-image tensors the model's operators compute: the batch leads their
        shape signature as it leads the input's (weights, constants, and shapes the graph computes left out)."""
        interpreter = self._tap_interpreter()
        details = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
        batch = _leading(self.input)
        indices = [int(i) for op in interpreter._get_ops_details() for i in op["outputs"] if int(i) >= 0]
        return {details[i]["name"]: details[i] for i in indices
                if len(details[i]["shape"]) >= 2 and _leading(details[i]) == batch}

    def tensor_names(self) -> list[str]:
        """The per-image tensors the model's operators compute (the `.tflite` file's names, execution order)."""
        return list(self._computed())

    def intermediates(self, x: np.ndarray, names: list[str], batch_size: int = _BATCH) -> dict[str, np.ndarray]:
        """The named tensors, from the builtin kernels (no delegate); a quantized one dequantized with its own
        scale and zero point."""
        computed = self._computed()
        require_tensors(self, names, computed)
        interpreter, step = self._tap_interpreter(), self.batch if self.static_batch else batch_size
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(x), step):
            self._place(x[start : start + step], interpreter)
            interpreter.invoke()
            for name in names:
                parts[name].append(_real(computed[name], interpreter.get_tensor(computed[name]["index"])))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def delegation(self) -> dict[str, Any]:
        """Which delegate runs the graph: the execution plan's DELEGATE nodes (XNNPACK, the default one)."""
        interpreter = self.session
        if interpreter is None:
            return {"delegate": "unknown"}
        try:
            ops = [op["op_name"] for op in interpreter._get_ops_details()]
        except (AttributeError, RuntimeError, ValueError):  # a private API: absent, the fact is unknown
            return {"delegate": "unknown"}
        partitions = ops.count("DELEGATE")
        kernels = sorted({op for op in ops if op != "DELEGATE"})
        return {"delegate": "XNNPACK" if partitions else "none", "delegate_partitions": partitions,
                "graph_ops": kernels}

    def info(self) -> dict[str, Any]:

        return {
            "runtime": "litert",
            "version": installed_version("ai_edge_litert"),
            "api": "ai_edge_litert.interpreter.Interpreter: set_tensor + invoke()",
            "threads": self.threads,
            "intra_op_threads": self.threads,
            "inter_op_threads": 1,
            "op_resolver": "AUTO (builtin kernels, default XNNPACK delegate)",
            **self.delegation(),
            "static_batch": self.batch if self.static_batch else None,
            "input_dtype": np.dtype(self.input["dtype"]).name,
            "output_dtype": np.dtype(self.output["dtype"]).name,
            "input_quantization": self.input_quantization.to_dict() if self.input_quantization else None,
            "output_quantization": self.output_quantization.to_dict() if self.output_quantization else None,
            "quantization_source": "the model's tensor details (scale, zero point)",
        }


def _leading(detail: dict[str, Any]) -> int:
    """A tensor's leading dimension as its shape signature declares it (-1: any batch)."""
    return int(detail.get("shape_signature", detail["shape"])[0])


def _real(detail: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    """A tensor's values as reals: dequantized where it is quantized (an integer tensor with a scale), else as
    they are (floats, and integers that are indices or shapes)."""
    scales = np.atleast_1d((detail.get("quantization_parameters") or {}).get("scales", []))
    if scales.size == 0 and not detail["quantization"][0]:
        return np.array(raw)
    quantization = Quantization.of(detail)
    return quantization.dequantize(raw) if quantization is not None else np.array(raw)
