"""ExecuTorch runner: a `.pte` program loaded by ExecuTorch's Python runtime and its `forward` method executed.

`executorch.runtime.Runtime` is the pybinding of the C++ runtime a phone app links: `load_program` reads
the program, `load_method("forward")` plans its memory and initialises its delegates (XNNPACK), and
`Method.execute([tensor])` runs it. XNNPACK's thread pool is set to the job's thread budget. Which
delegates the program holds is read from the program itself (`info()`).

Intermediate tensors come from a *tapped copy* of the deployed program (`runtimes.pte_program.tapped_program`): the
same instructions, XNNPACK partitions, weights and quantisation parameters, with the asked tensors as extra method
outputs (inside a partition: one XNNPACK Copy, or Convert to float32 for an int8 tensor, per tensor); its logits
equal the deployed program's. Names are ``v<i>`` (the program's value i) and ``xnnpack<d>/<id>`` (a value inside
XNNPACK partition d); an int8 tensor comes back dequantised by XNNPACK. An int8 program's output quantisation (the
tensor its last partition dequantises into the logits) is `output_quantization`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError, one_line
from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.base import Loader, Runner, require_tensors, to_layout
from dlcompat.versions import installed_version

#: the largest batch a program is exported for (`dlcompat.converters.torch_pte.MAX_BATCH`)
_BATCH = 256


@dataclass(frozen=True)
class ExecuTorchMethod:
    """A loaded program and its planned `forward` method; XNNPACK's pool size as the runtime reports it."""

    program: Any
    method: Any
    pool_threads: int


@dataclass(frozen=True)
class MethodFromPte(Loader):
    """The `forward` method of the `.pte` program at `path`, XNNPACK's thread pool set to `threads`."""

    path: Path
    threads: int = 1

    def __call__(self) -> ExecuTorchMethod:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(self.threads)  # XNNPACK's pool (experimental API, the only one)
        pool_threads = int(portable_lib._threadpool_get_thread_count())
        try:
            program = Runtime.get().load_program(self.path)
            method = program.load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError or ValueError, its bindings others
            raise ModelFileError(f"{self.path} is not a loadable ExecuTorch program ({one_line(exc)}): "
                                 "convert it again") from exc
        if method is None:
            raise ModelFileError(f"{self.path} has no `forward` method: export the model's forward")
        return ExecuTorchMethod(program, method, pool_threads)


class ExecuTorchRunner(Runner):
    name = "executorch"
    no_intermediates = ("the program is not readable as an ExecuTorch program with XNNPACK or portable kernels, so "
                        "no tapped copy of it can be made")
    #: the program read as data, once (`program()`)
    _program: Any = None

    def loader(self) -> MethodFromPte:
        return MethodFromPte(self.path, self.threads)

    def activate(self) -> None:
        import torch

        self.torch = torch
        super().activate()
        self.method, self.pool_threads = self.session.method, self.session.pool_threads
        self._program = None
        self._taps: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def _tensor(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(to_layout(x, self.input_layout).astype(np.float32, copy=False))

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        inputs, execute = [self._tensor(x)], self.method.execute
        return lambda: execute(inputs)

    def infer(self, x: np.ndarray, batch_size: int = _BATCH) -> np.ndarray:
        out = [self.method.execute([self._tensor(x[i : i + batch_size])])[0].numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def release(self, session: ExecuTorchMethod) -> None:
        self.method, self._program, self._taps = None, None, {}

    # ------------------------------------------------------------------ intermediate tensors

    def program(self) -> Any:
        """The program read as data (`runtimes.pte_program.PteProgram`); `Unavailable` where it cannot be."""
        from dlcompat.runtimes.pte_program import read_program

        if self._program is None:
            try:
                self._program = read_program(self.path)
            except Exception as exc:  # ExecuTorch's private reader and flatc raise many kinds on a foreign file
                raise Unavailable(f"{self.name}: {self.no_intermediates} ({one_line(exc)})") from exc
        return self._program

    @property
    def output_quantization(self) -> Any:
        """The int8 quantisation (scale, zero point) of the tensor the program dequantises into its logits, or None
        (a float program)."""
        from dlcompat.runtimes.pte_program import output_quantisation

        return output_quantisation(self.program())

    def tensor_names(self) -> list[str]:
        """The per-image tensors the program computes, in execution order (see the module's docstring)."""
        from dlcompat.runtimes.pte_program import computed_tensors

        return computed_tensors(self.program())

    def intermediates(self, x: np.ndarray, names: list[str], batch_size: int = _BATCH) -> dict[str, np.ndarray]:
        """The named tensors, from the tapped copy of the program (float32; int8 ones dequantised by XNNPACK)."""
        require_tensors(self, names, self.tensor_names())
        method, order = self._tapped(tuple(names))
        own = len(self.program().plan.outputs)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in order}
        for start in range(0, len(x), batch_size):
            outputs = method.execute([self._tensor(x[start : start + batch_size])])
            for name, value in zip(order, outputs[own:], strict=True):
                parts[name].append(value.numpy().astype(np.float32))
        return {name: np.concatenate(parts[name]) for name in names}

    def _tapped(self, names: tuple[str, ...]) -> tuple[Any, list[str]]:
        if names not in self._taps:
            from executorch.runtime import Runtime

            from dlcompat.runtimes.pte_program import tapped_program

            data, order = tapped_program(self.path, list(names))
            program = Runtime.get().load_program(data)  # reads `data` in place: the bytes live as long as it does
            self._taps[names] = (program.load_method("forward"), order, program, data)
        method, order, *_ = self._taps[names]
        return method, order

    def delegates(self) -> dict[str, Any]:
        """The backends the program's delegate calls name (read from the `.pte` itself)."""
        try:
            from executorch.exir._serialize._program import deserialize_pte_binary

            parsed = deserialize_pte_binary(self.path.read_bytes())
            program = getattr(parsed, "program", parsed)
            ids = [d.id for plan in program.execution_plan for d in plan.delegates]
        except Exception:  # a private reader: where it fails, the fact is unknown
            return {"delegate": "unknown"}
        names = sorted(set(ids))
        return {"delegate": ", ".join(n.removesuffix("Backend") for n in names).replace("Xnnpack", "XNNPACK") or "none",
                "delegate_partitions": len(ids)}

    def info(self) -> dict[str, Any]:
        return {"runtime": "executorch", "version": installed_version("executorch"),
                "torch": self.torch.__version__, "api": "executorch.runtime: Program.load_method('forward').execute",
                "threads": self.threads, "intra_op_threads": getattr(self, "pool_threads", self.threads),
                "inter_op_threads": 1, **self.delegates()}
