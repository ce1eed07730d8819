"""Frameworks by name: where each adapter lives, which toolchain environment it runs in, and every fact the
rest of the study needs about it (its display name, the package whose version stands for it, how to seed it).

The table is data; adapters are imported only when a job asks for one (`adapter_class`), so listing
frameworks never imports a framework. Adding a framework is one `register_framework` call here and its
adapter module: nothing else in the study names frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcompat.frameworks.base import FrameworkAdapter
from dlcompat.registry import Registry, resolve, resolve_loaded


@dataclass(frozen=True)
class FrameworkEntry:
    """One framework: its adapter, its environment, and the facts the planner, the jobs and the report read."""

    name: str
    title: str  # how the report writes it, e.g. "PyTorch"
    adapter: str  # "module:Class"
    env: str  # toolchain environment name (dlcompat.envs.registry)
    module: str  # the import that proves the framework is installed
    package: str  # the module whose installed version stands for the framework (dlcompat.versions)
    install: str  # what to tell a user who lacks it
    description: str
    #: "module:function" seeding the framework's own global generator, called with the seed once the framework is
    #: loaded (`seed_loaded_frameworks`); "" where it draws from NumPy's or from explicit keys only
    seed: str = ""


FRAMEWORKS: Registry[FrameworkEntry] = Registry("framework")
register_framework = FRAMEWORKS.register

register_framework(
    FrameworkEntry(
        name="pytorch",
        title="PyTorch",
        adapter="dlcompat.frameworks.pytorch:PyTorchAdapter",
        env="main",
        module="torch",
        package="torch",
        install="pip install 'dlcompat[pytorch]' (torch==2.13.0, the CPU build), or `make setup`",
        description="PyTorch (eager nn.Module, torch.optim)",
        seed="torch:manual_seed",
    )
)
register_framework(
    FrameworkEntry(
        name="tensorflow",
        title="TensorFlow",
        adapter="dlcompat.frameworks.tensorflow:KerasAdapter",
        env="main",
        module="tensorflow",
        package="tensorflow",
        install="pip install 'dlcompat[tensorflow]' (tensorflow-cpu==2.21.0, keras==3.15.1), or `make setup`",
        description="Keras 3 on TensorFlow (model.fit with tf.data, .keras files)",
        seed="tensorflow:random.set_seed",
    )
)
register_framework(
    FrameworkEntry(
        name="jax",
        title="JAX",
        adapter="dlcompat.frameworks.jax:FlaxAdapter",
        env="main",
        module="flax",
        package="jax",
        install="pip install 'dlcompat[jax]' (jax==0.10.2, flax==0.12.8, optax==0.2.8), or `make setup`",
        description="JAX with Flax (nnx) and optax, jit-compiled training step",
    )
)
register_framework(
    FrameworkEntry(
        name="pytensor",
        title="PyTensor",
        adapter="dlcompat.frameworks.pytensor:PyTensorAdapter",
        env="main",
        module="pytensor",
        package="pytensor",
        install="pip install 'dlcompat[pytensor]' (pytensor==3.0.7) and Debian's libopenblas-dev, or `make setup`",
        description="PyTensor, Theano's maintained successor (C backend, im2col convolution)",
    )
)
register_framework(
    FrameworkEntry(
        name="theano",
        title="Theano",
        adapter="dlcompat.frameworks.theano:TheanoAdapter",
        env="theano",
        module="theano",
        package="theano",
        install="`dlcompat env sync theano` (Theano 1.0.5, numpy 1.23.5) and Debian's libopenblas-dev",
        description="the original Theano 1.0.5 (nnet.conv2d, pool_2d), in its own environment",
    )
)


def framework_names() -> list[str]:
    return FRAMEWORKS.names()


def framework_entry(name: str) -> FrameworkEntry:
    return FRAMEWORKS.get(name)


def adapter_class(name: str) -> type[FrameworkAdapter]:
    return resolve(framework_entry(name).adapter)


def make_adapter(name: str, threads: int = 1) -> FrameworkAdapter:
    return adapter_class(name)(threads=threads)


def seed_loaded_frameworks(seed: int) -> None:
    """Seed the global generator of every framework this process has already imported (importing none)."""
    for entry in FRAMEWORKS:
        seeder = resolve_loaded(entry.seed) if entry.seed else None
        if seeder is not None:
            seeder(seed)
