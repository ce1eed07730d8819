"""Models for the browser runtime tests: LeNet-5 trained briefly on real MNIST, as ONNX and as TF.js.

- `lenet5_onnx`: the PyTorch adapter's LeNet-5, one epoch on `mnist_small`, exported with torch.onnx
  (dynamo), with ONNX Runtime's logits on the test images: the server side ORT-web is compared to.
- `keras_lenet5`: a Keras 3 LeNet-5 built here, layer for layer the zoo's `lenet5` spec (until the
  Keras adapter exists, the `.keras` file it will hand the `keras.tfjs` edge), one epoch on `mnist_small`,
  with Keras's own logits: the server side TF.js is compared to.
- `tfjs_models`: that `.keras` file through the `keras.tfjs` edge in the `tfjs` toolchain environment
  (built on first use: TensorFlow 2.19 and tensorflowjs, a few minutes once), one archive per quantization.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.envs.registry import get_env, sync_env

#: images the browser tests run (the whole 500-image test split of `mnist_small`)
TEST_IMAGES = 500


@pytest.fixture(scope="session")
def mnist_test(mnist_small) -> tuple[np.ndarray, np.ndarray]:
    return to_float(mnist_small.test.x[:TEST_IMAGES]), mnist_small.test.y[:TEST_IMAGES]


@pytest.fixture(scope="session")
def lenet5_onnx(mnist_small, mnist_test, tmp_path_factory) -> dict:
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner
    from dlcompat.zoo.registry import build_spec

    adapter = make_adapter("pytorch", threads=1)  # 2 threads on 2 shared cores thrash
    spec = build_spec("lenet5", mnist_small.input_shape, mnist_small.num_classes)
    model = adapter.build(spec, seed=0)
    settings = TrainSettings(epochs=1, batch_size=32, optimizer="sgd", lr=0.02, momentum=0.9, seed=0)
    adapter.train(model, spec, (to_float(mnist_small.train.x), mnist_small.train.y),
                  (to_float(mnist_small.val.x[:100]), mnist_small.val.y[:100]), settings)
    path = tmp_path_factory.mktemp("onnx") / "lenet5.onnx"
    facts = adapter.export(model, spec, "onnx", path, variant="dynamo")
    x, _ = mnist_test
    with OnnxRuntimeRunner(path, input_layout=facts["input_layout"]) as ort:
        logits = ort.infer(x)
    return {"path": path, "input_layout": facts["input_layout"], "logits": logits}


def build_keras_lenet5(input_shape: tuple[int, int, int], classes: int, seed: int = 0):
    """The zoo's lenet5 in Keras 3: conv(6, 5, pad 2) relu pool, conv(16, 5) relu pool, dense 120-84-classes."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.ZeroPadding2D(2, name="pad1"), layers.Conv2D(6, 5, name="conv1"), layers.Activation("relu"),
        layers.MaxPooling2D(2, name="pool1"), layers.Conv2D(16, 5, name="conv2"), layers.Activation("relu"),
        layers.MaxPooling2D(2, name="pool2"), layers.Flatten(name="flatten"),
        layers.Dense(120, name="fc1"), layers.Activation("relu"), layers.Dense(84, name="fc2"),
        layers.Activation("relu"), layers.Dense(classes, name="fc3"),
    ], name="lenet5")


@pytest.fixture(scope="session")
def keras_lenet5(mnist_small, mnist_test, tmp_path_factory) -> dict:
    import keras
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # too late where another test already started TensorFlow
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    model = build_keras_lenet5(mnist_small.input_shape, mnist_small.num_classes)
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(to_float(mnist_small.train.x), mnist_small.train.y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    path = tmp_path_factory.mktemp("keras") / "lenet5.keras"
    model.save(path)
    x, _ = mnist_test
    return {"path": path, "logits": np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)}


_CONVERT = """
import json, sys
from pathlib import Path
from dlcompat.converters.keras_tfjs import convert
source, out = Path(sys.argv[1]), Path(sys.argv[2])
facts = {v: convert(source, out / f"lenet5-{v}.tfjs.zip", spec=None, variant=v) for v in sys.argv[3:]}
print(json.dumps(facts))
"""


@pytest.fixture(scope="session")
def tfjs_models(keras_lenet5, tmp_path_factory) -> dict[str, dict]:
    """variant -> {"path": archive, "facts": the edge's facts}, converted in the tfjs environment."""
    env = get_env("tfjs")
    if not env.exists():
        sync_env("tfjs", Path(tmp_path_factory.mktemp("tfjs-env")) / "sync.log")
    out = tmp_path_factory.mktemp("tfjs")
    variants = ["none", "uint8", "float16"]
    done = subprocess.run([str(env.interpreter()), "-c", _CONVERT, str(keras_lenet5["path"]), str(out), *variants],
                          capture_output=True, text=True, timeout=300, env={**env.worker_environ(1), **_quiet()})
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    return {v: {"path": out / f"lenet5-{v}.tfjs.zip", "facts": facts[v]} for v in variants}


def _quiet() -> dict[str, str]:
    return {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore")}
