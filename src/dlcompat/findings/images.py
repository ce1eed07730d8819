"""The images a localisation runs on, from a user's `.npz`: an array `x` (N, H, W, C), uint8 (scaled by 1/255) or
float in [0, 1], and optionally labels `y` (N,). Every problem is one sentence (`DataError`), never a traceback;
the archive is checked for zip bombs and read without unpickling (the checks live in `dlcompat.data.user_images`,
shared with `dlcompat check`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcompat.data.user_images import check_array, check_labels, check_unit_range, read_npz
from dlcompat.errors import DataError


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
    arrays = read_npz(path)
    x = arrays["x"][:limit] if limit else arrays["x"]
    y = arrays.get("y")
    return Images(_as_float(x, path), check_labels(y[:limit] if (y is not None and limit) else y, len(x), path),
                  str(path))


def _as_float(x: np.ndarray, path: Path) -> np.ndarray:
    check_array(x, path)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    check_unit_range(x, path)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_shape(images: Images, model_shape: tuple[int, int, int], model: str) -> None:
    """One sentence when the images' (H, W, C) is not the model's."""
    if images.shape != tuple(model_shape):
        got, want = "x".join(map(str, images.shape)), "x".join(map(str, model_shape))
        raise DataError(f"--images {images.path}: the images are {got} (H x W x C), {model} takes {want}")
