"""Frameworks by name: where each adapter lives, which toolchain environment it runs in, what it needs.

The table is data; adapters are imported only when a job asks for one (`adapter_class`), so listing
frameworks never imports a framework.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from dlcompat.errors import ConfigError
from dlcompat.frameworks.base import FrameworkAdapter


@dataclass(frozen=True)
class FrameworkEntry:
    name: str
    adapter: str  # "module:Class"
    env: str  # toolchain environment name (dlcompat.envs.registry)
    module: str  # the import that proves the framework is installed
    install: str  # what to tell a user who lacks it
    description: str


_FRAMEWORKS: dict[str, FrameworkEntry] = {}


def register_framework(entry: FrameworkEntry) -> None:
    _FRAMEWORKS[entry.name] = entry


register_framework(
    FrameworkEntry(
        name="pytorch",
        adapter="dlcompat.frameworks.pytorch:PyTorchAdapter",
        env="main",
        module="torch",
        install="pip install 'dlcompat[pytorch]' (torch==2.13.0, the CPU build), or `make setup`",
        description="PyTorch (eager nn.Module, torch.optim)",
    )
)


register_framework(
    FrameworkEntry(
        name="tensorflow",
        adapter="dlcompat.frameworks.tensorflow:KerasAdapter",
        env="main",
        module="tensorflow",
        install="pip install 'dlcompat[tensorflow]' (tensorflow-cpu==2.21.0, keras==3.15.1), or `make setup`",
        description="Keras 3 on TensorFlow (model.fit with tf.data, .keras files)",
    )
)
register_framework(
    FrameworkEntry(
        name="jax",
        adapter="dlcompat.frameworks.jax:FlaxAdapter",
        env="main",
        module="flax",
        install="pip install 'dlcompat[jax]' (jax==0.10.2, flax==0.12.8, optax==0.2.8), or `make setup`",
        description="JAX with Flax (nnx) and optax, jit-compiled training step",
    )
)
register_framework(
    FrameworkEntry(
        name="pytensor",
        adapter="dlcompat.frameworks.pytensor:PyTensorAdapter",
        env="main",
        module="pytensor",
        install="pip install 'dlcompat[pytensor]' (pytensor==3.0.7) and Debian's libopenblas-dev, or `make setup`",
        description="PyTensor, Theano's maintained successor (C backend, im2col convolution)",
    )
)
register_framework(
    FrameworkEntry(
        name="theano",
        adapter="dlcompat.frameworks.theano:TheanoAdapter",
        env="theano",
        module="theano",
        install="`dlcompat env sync theano` (Theano 1.0.5, numpy 1.23.5) and Debian's libopenblas-dev",
        description="the original Theano 1.0.5 (nnet.conv2d, pool_2d), in its own environment",
    )
)


def framework_names() -> list[str]:
    return list(_FRAMEWORKS)


def framework_entry(name: str) -> FrameworkEntry:
    if name not in _FRAMEWORKS:
        raise ConfigError(f"unknown framework {name!r}: choose one of {', '.join(_FRAMEWORKS)}")
    return _FRAMEWORKS[name]


def adapter_class(name: str) -> type[FrameworkAdapter]:
    module, cls = framework_entry(name).adapter.split(":")
    return getattr(importlib.import_module(module), cls)


def make_adapter(name: str, threads: int = 1) -> FrameworkAdapter:
    return adapter_class(name)(threads=threads)
