"""The images a localisation runs on, from a user's `.npz`: an array `x` (N, H, W, C), uint8 (scaled by 1/255) or
float in [0, 1], and optionally labels `y` (N,). Every problem is one sentence (`DataError`), never a traceback;
the archive is checked for zip bombs and read without unpickling.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.errors import DataError, one_line


@dataclass(frozen=True)
class Images:
    x: np.ndarray  # float32 NHWC in [0, 1]
    y: np.ndarray | None
    path: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return (int(self.x.shape[1]), int(self.x.shape[2]), int(self.x.shape[3]))


def load_images(path: Path, limit: int | None = None) -> Images:
    """The images of `path` (an `.npz` holding `x`, optionally `y`), the first `limit` of them when given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--images {path} does not exist: pass an .npz file holding an array x (N, H, W, C)")
    if not zipfile.is_zipfile(path):
        raise DataError(f"--images {path} is not an .npz archive: save the images with numpy.savez(path, x=images)")
    try:
        check_zip(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in ("x", "y")}
    except Exception as exc:  # NumPy and zipfile raise many kinds on a foreign, corrupt or pickled file
        raise DataError(f"--images {path} is not a readable .npz archive ({type(exc).__name__}: {one_line(exc)}): "
                        "save the images with numpy.savez(path, x=images)") from exc
    if "x" not in arrays:
        raise DataError(f"--images {path} holds no array named x: save the images with numpy.savez(path, x=images)")
    x = arrays["x"][:limit] if limit else arrays["x"]
    y = arrays.get("y")
    return Images(_as_float(x, path), _labels(y[:limit] if (y is not None and limit) else y, len(x), path), str(path))


def _as_float(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim != 4:
        raise DataError(f"--images {path}: x has shape {x.shape}, not (N, H, W, C) with four axes")
    if len(x) == 0:
        raise DataError(f"--images {path}: x holds no images")
    if x.shape[3] not in (1, 3, 4):
        raise DataError(f"--images {path}: x has {x.shape[3]} channels on its last axis: images are (N, H, W, C) "
                        "with 1, 3 or 4 channels (transpose NCHW images to NHWC)")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"--images {path}: x is {x.dtype}: pass uint8 images (0-255) or float images in [0, 1]")
    if not np.all(np.isfinite(x)) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise DataError(f"--images {path}: float x has values in [{float(np.nanmin(x)):.4g}, "
                        f"{float(np.nanmax(x)):.4g}] (or non-finite ones), not in [0, 1]: scale the images first")
    return np.ascontiguousarray(x, dtype=np.float32)


def _labels(y: np.ndarray | None, n: int, path: Path) -> np.ndarray | None:
    if y is None:
        return None
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"--images {path}: y has shape {y.shape} and dtype {y.dtype}: labels are integers, one "
                        f"per image ({n})")
    return y


def check_shape(images: Images, model_shape: tuple[int, int, int], model: str) -> None:
    """One sentence when the images' (H, W, C) is not the model's."""
    if images.shape != tuple(model_shape):
        got, want = "x".join(map(str, images.shape)), "x".join(map(str, model_shape))
        raise DataError(f"--images {images.path}: the images are {got} (H x W x C), {model} takes {want}")
