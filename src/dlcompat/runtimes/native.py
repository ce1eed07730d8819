"""The native runtime: a framework's own saved model, run by its adapter with its fastest idiom."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.base import Runner
from dlcompat.zoo.spec import ModelSpec


class NativeRunner(Runner):
    """`options`: framework (registry name) and spec (the ModelSpec the file was saved from)."""

    name = "native"

    def activate(self) -> None:
        self.adapter = make_adapter(self.options["framework"], threads=self.threads)
        self.spec: ModelSpec = self.options["spec"]
        self.model = self.adapter.load(self.spec, self.path)

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        return self.adapter.predictor(self.model, x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)

    def deactivate(self) -> None:
        self.model = None

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.adapter.name,
            "version": self.adapter.version(),
            "threads": self.threads,
            **threads_in_effect(self.adapter),
            "delegate": "none",  # CPU builds only, for now: no accelerator ran
            "api": self.adapter.predict_api,
        }


def threads_in_effect(adapter: Any) -> dict[str, Any]:
    """Intra- and inter-op threads as the framework itself reports them (None where it cannot say).

    An adapter may answer for itself with a `threads_in_effect()` method; otherwise the framework is asked
    here. 0 means "the framework's default" (TensorFlow, ONNX Runtime: about one per core).
    """
    own = getattr(adapter, "threads_in_effect", None)
    ask = own if callable(own) else _THREADS_IN_EFFECT.get(adapter.name)
    if ask is None:
        return {"intra_op_threads": None, "inter_op_threads": None}
    try:
        return dict(ask() if ask is own else ask(adapter))
    except Exception as exc:  # a framework that changed its API must not lose the figure
        return {"intra_op_threads": None, "inter_op_threads": None, "threads_error": f"{type(exc).__name__}: {exc}"}


def _torch_threads(adapter: Any) -> dict[str, Any]:
    import torch

    return {"intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads()}


def _tensorflow_threads(adapter: Any) -> dict[str, Any]:
    import tensorflow as tf

    return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def _xla_threads(adapter: Any) -> dict[str, Any]:
    """XLA's CPU client has no API for its thread pools: infer them from the flags its backend started with.

    `--xla_cpu_multi_thread_eigen=false` makes convolutions and matmuls single-threaded; otherwise Eigen's
    pool follows the CPU affinity mask, unless `--intra_op_parallelism_threads` pins it.
    """
    started = getattr(adapter, "runtime", None)
    flags = (started() if callable(started) else {}).get("xla_flags") or os.environ.get("XLA_FLAGS", "")
    pinned = re.search(r"--intra_op_parallelism_threads=(\d+)", flags)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    eigen = 1 if "--xla_cpu_multi_thread_eigen=false" in flags else int(pinned.group(1)) if pinned else cpus
    return {"intra_op_threads": eigen, "inter_op_threads": None, "xla_flags": flags}


_THREADS_IN_EFFECT: dict[str, Callable[[Any], dict[str, Any]]] = {
    "pytorch": _torch_threads,
    "tensorflow": _tensorflow_threads,
    "jax": _xla_threads,
}
