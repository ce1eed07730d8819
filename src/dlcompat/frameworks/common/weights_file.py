"""The `.npz` model file of canonical weights: the native format of frameworks without a safe one of their own
(Theano and PyTensor pickle). Reading it never unpickles, and refuses anything but exactly the spec's float32
weights. NumPy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.errors import ModelFileError, one_line
from dlcompat.zoo.spec import ModelSpec


def save_weights_file(weights: dict[str, np.ndarray], path: Path) -> None:
    """Write `weights` to `path` as an uncompressed `.npz`, under that exact name."""
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a bare path
        np.savez(handle, **weights)


def load_weights_file(spec: ModelSpec, path: Path, framework: str) -> dict[str, np.ndarray]:
    """The canonical weights of `spec` in the `.npz` at `path`, written by `framework`'s adapter.

    Raises ModelFileError unless the file is an `.npz` (no pickles, no zip bomb) holding exactly the
    spec's weights, each float32 of its canonical shape.
    """
    expected = spec.weight_shapes()
    try:
        check_zip(path)  # a zip bomb is refused before NumPy unpacks a member
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with loaded as npz:
            if set(npz.files) != set(expected):
                raise ValueError(f"its arrays are not the canonical weights of {spec.name}")
            weights = {name: npz[name] for name in expected}
        for name, shape in expected.items():
            if weights[name].shape != shape or weights[name].dtype != np.float32:
                raise ValueError(f"{name} is {weights[name].dtype} {weights[name].shape}, not float32 {shape}")
    except Exception as exc:  # a foreign, corrupt or pickled file: np.load raises many kinds
        raise ModelFileError(
            f"{path} is not a {framework} model file of {spec.name}, an .npz of its canonical weights "
            f"({type(exc).__name__}: {one_line(exc)}); pass a file written by dlcompat's {framework} adapter"
        ) from exc
    return weights
