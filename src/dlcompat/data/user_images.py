"""A user's images and labels, at the input size of the model they check (`dlcompat check --images DATA`).

DATA is either
- an `.npz` holding `x`, images (N, H, W, C): uint8, or float in [0, 1], which is stored as ``round(x * 255)``
  uint8 (`source` says so); and optionally `y`, integer labels (N,). The archive is checked for zip bombs and
  read without unpickling (`allow_pickle=False`); or
- a folder with one subfolder per class holding PNG, JPEG or BMP files; a class's index is its subfolder's place
  in sorted order. Files are decoded by TensorFlow (`tf.io.decode_image`) to the model's channel count (a gray
  file read for an RGB model is repeated to three channels, as an app's image loader does); other files and
  hidden folders are skipped, and `source` counts them.

Images whose H x W is not the model's are refused, unless `resize` is given: then they are resized by
``tf.image.resize(method="bilinear", antialias=True)`` and rounded back to uint8. A `limit` takes the first
`limit` images of an `.npz`, and `limit` images spread evenly over a folder's sorted files (so every class keeps
its share). `labels`, an `.npy` integer array or a `.txt` file with one integer per line, one per image of DATA,
overrides `y` and the folders' classes. Every problem is one `DataError` sentence that says what to do.

TensorFlow is imported only to decode files or to resize. The `.npz` checks shared with `dlcompat localize`
(`dlcompat.findings.images`) live here: `read_npz`, `check_array`, `check_unit_range` and `check_labels`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.errors import DataError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SAVE_HINT = "save the images with numpy.savez(path, x=images)"
_RESIZE_BATCH = 256


@dataclass(frozen=True)
class UserImages:
    x: np.ndarray  # uint8 NHWC at the model's (H, W, C)
    y: np.ndarray | None  # int64 labels, or None when the user gave none
    class_names: tuple[str, ...] | None  # a folder's class subfolders, in label order
    source: str  # one line: path, count, whether and how they were resized
    sha256: str  # of x (shape and bytes), then y, then the class names: the same images give the same hash


# --- the .npz checks, shared with `dlcompat localize` ----------------------------------------------------------
def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays `x` and (when there) `y` of the `.npz` at `path`, one sentence for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--images {path} does not exist: pass an .npz file holding an array x (N, H, W, C)")
    if not zipfile.is_zipfile(path):
        raise DataError(f"--images {path} is not an .npz archive: {_SAVE_HINT}")
    try:
        check_zip(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in ("x", "y")}
    except Exception as exc:  # NumPy and zipfile raise many kinds on a foreign, corrupt or pickled file
        raise DataError(f"--images {path} is not a readable .npz archive ({type(exc).__name__}: {one_line(exc)}): "
                        f"{_SAVE_HINT}") from exc
    if "x" not in arrays:
        raise DataError(f"--images {path} holds no array named x: {_SAVE_HINT}")
    return arrays


def check_array(x: np.ndarray, path: Path) -> None:
    """`x` is a non-empty (N, H, W, C) batch with 1, 3 or 4 channels on its last axis."""
    if x.ndim != 4:
        raise DataError(f"--images {path}: x has shape {x.shape}, not (N, H, W, C) with four axes")
    if len(x) == 0:
        raise DataError(f"--images {path}: x holds no images")
    if x.shape[3] not in (1, 3, 4):
        raise DataError(f"--images {path}: x has {x.shape[3]} channels on its last axis: images are (N, H, W, C) "
                        "with 1, 3 or 4 channels (transpose NCHW images to NHWC)")


def check_unit_range(x: np.ndarray, path: Path) -> None:
    """Non-uint8 `x` is float with finite values in [0, 1]."""
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"--images {path}: x is {x.dtype}: pass uint8 images (0-255) or float images in [0, 1]")
    if not np.all(np.isfinite(x)) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise DataError(f"--images {path}: float x has values in [{float(np.nanmin(x)):.4g}, "
                        f"{float(np.nanmax(x)):.4g}] (or non-finite ones), not in [0, 1]: scale the images first")


def check_labels(y: np.ndarray | None, n: int, path: Path) -> np.ndarray | None:
    """`y` is None or integer labels, one per image (`n`)."""
    if y is None:
        return None
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"--images {path}: y has shape {y.shape} and dtype {y.dtype}: labels are integers, one "
                        f"per image ({n})")
    return y


def check_label_range(y: np.ndarray, num_classes: int, what: str) -> None:
    """Every label in [0, num_classes); the first one outside is named."""
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        first = int(bad[0])
        raise DataError(f"{what}: label {int(y[first])} of image {first} is outside [0, {num_classes}), the model's "
                        f"{num_classes} classes: give labels 0 to {num_classes - 1}")


# --- labels ----------------------------------------------------------------------------------------------------
def read_labels(path: Path, count: int) -> np.ndarray:
    """One integer label per image (`count`) from an `.npy` array (no pickles) or a `.txt` file (one a line)."""
    path = Path(path)
    hint = "pass an .npy integer array or a .txt file with one integer label per line, one per image"
    if not path.is_file():
        raise DataError(f"--labels {path} does not exist: {hint}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        labels = _read_npy(path, hint)
    elif suffix == ".txt":
        labels = _read_txt(path, hint)
    else:
        raise DataError(f"--labels {path} is neither .npy nor .txt: {hint}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"--labels {path} holds a {labels.dtype} array of shape {labels.shape}: {hint}")
    if len(labels) != count:
        raise DataError(f"--labels {path} holds {len(labels)} labels for {count} images: give one label per image")
    return labels.astype(np.int64)


def _read_npy(path: Path, hint: str) -> np.ndarray:
    try:
        with path.open("rb") as handle:  # the header's announced size is checked before NumPy allocates it
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
            if int(np.prod(shape, dtype=object)) * dtype.itemsize > path.stat().st_size:
                raise ValueError(f"its header announces a {dtype} array of shape {shape}, more than the file holds")
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # NumPy raises many kinds on a foreign, truncated or pickled file
        raise DataError(f"--labels {path} is not a readable .npy array ({type(exc).__name__}: {one_line(exc)}): "
                        f"{hint}") from exc


def _read_txt(path: Path, hint: str) -> np.ndarray:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--labels {path} cannot be read as text ({one_line(exc)}): {hint}") from exc
    values = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            values.append(int(line.strip()))
        except ValueError as exc:
            raise DataError(f"--labels {path}: line {number} ({line.strip()[:40]!r}) is not an integer: "
                            f"{hint}") from exc
    return np.array(values, dtype=np.int64)


# --- the images ------------------------------------------------------------------------------------------------
def read_user_images(path: Path, *, shape: tuple[int, int, int], num_classes: int, resize: bool = False,
                     labels: Path | None = None, limit: int | None = None) -> UserImages:
    """The images at `path` (an `.npz` or a folder of class subfolders) as uint8 NHWC at the model's `shape`
    (H, W, C), with their labels (from `labels`, else the `.npz`'s `y` or the folders' classes)."""
    path = Path(path)
    if limit is not None and limit < 1:
        raise DataError(f"the image limit {limit} is not positive: pass a limit of at least 1")
    if path.is_dir():
        x, y, names, total, chosen, notes = _read_folder(path, shape, resize, limit)
    else:
        x, y, total, chosen, notes = _read_npz_images(path, shape, resize, limit)
        names = None
    if labels is not None:
        y, names = read_labels(labels, total)[chosen], None
        notes.append(f"labels from {labels}")
        check_label_range(y, num_classes, f"--labels {labels}")
    elif names is not None and len(names) > num_classes:
        raise DataError(f"--images {path} has {len(names)} class folders, the model has {num_classes} classes: "
                        f"folder {names[num_classes]!r} would be label {num_classes}: give one folder per class the "
                        "model has, or pass --labels")
    elif y is not None:
        check_label_range(y, num_classes, f"--images {path}")
    count = f"{len(x)} of {total} images" if len(x) < total else f"{len(x)} images"
    source = f"{path}: {count}, {', '.join(notes)}" if notes else f"{path}: {count}"
    return UserImages(x=x, y=y, class_names=names, source=source, sha256=_digest(x, y, names))


def _digest(x: np.ndarray, y: np.ndarray | None, names: tuple[str, ...] | None) -> str:
    digest = hashlib.sha256(f"{x.dtype}{x.shape}".encode())
    digest.update(np.ascontiguousarray(x).data)
    if y is not None:
        digest.update(np.ascontiguousarray(y, dtype=np.int64).data)
    digest.update(repr(names).encode())
    return digest.hexdigest()


def _size_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _read_npz_images(path: Path, shape: tuple[int, int, int], resize: bool,
                     limit: int | None) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray, list[str]]:
    """(x, y, images in the file, indices taken, notes) of an `.npz`."""
    arrays = read_npz(path)
    x = arrays["x"]
    check_array(x, path)
    total = len(x)
    chosen = np.arange(min(limit or total, total))
    y = check_labels(arrays.get("y"), total, path)
    x = x[chosen]
    notes = []
    if x.dtype != np.uint8:
        check_unit_range(x, path)
        x = np.rint(x.astype(np.float64) * 255.0).astype(np.uint8)
        notes.append(f"float x in [0, 1] stored as round(x*255) uint8 (was {arrays['x'].dtype})")
    if x.shape[3] != shape[2]:
        raise DataError(f"--images {path}: the images have {x.shape[3]} channel(s), the model takes {shape[2]}: "
                        "convert them to its channel count before saving")
    if x.shape[1:3] != tuple(shape[:2]):
        if not resize:
            raise DataError(f"--images {path}: the images are {_size_text(x.shape[1:3])} (H x W), the model takes "
                            f"{_size_text(shape[:2])}: pass --resize to resize them bilinearly to "
                            f"{_size_text(shape[:2])}")
        notes.append(f"resized bilinearly (antialiased) from {_size_text(x.shape[1:3])} to {_size_text(shape[:2])}")
        x = resize_images(x, shape[:2])
    return np.ascontiguousarray(x), (None if y is None else y[chosen].astype(np.int64)), total, chosen, notes


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines (oneDNN, CPU features)
    import tensorflow as tf

    return tf


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 NHWC images resized to `size` (H, W): `tf.image.resize(method="bilinear", antialias=True)`, rounded
    and clipped back to uint8; in batches, so a large set never holds all its float copies at once."""
    tf = _tensorflow()
    out = np.empty((len(x), size[0], size[1], x.shape[3]), np.uint8)
    for start in range(0, len(x), _RESIZE_BATCH):
        batch = tf.image.resize(x[start:start + _RESIZE_BATCH], size, method="bilinear", antialias=True).numpy()
        out[start:start + _RESIZE_BATCH] = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
    return out


def _folder_files(path: Path) -> tuple[list[str], list[tuple[int, Path]], int]:
    """(class names, (label, file) in sorted order, files skipped) of a folder of class subfolders."""
    try:
        classes = sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        files, skipped = [], 0
        for label, name in enumerate(classes):
            for entry in sorted((path / name).iterdir()):
                if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((label, entry))
                elif not entry.name.startswith("."):
                    skipped += 1
    except OSError as exc:
        raise DataError(f"--images {path} cannot be listed ({one_line(exc)}): make the folder readable") from exc
    if not classes:
        raise DataError(f"--images {path} holds no class subfolders: put the images in one subfolder per class "
                        f"(e.g. {path}/cat/1.png), or pass an .npz")
    if not files:
        raise DataError(f"--images {path} holds no PNG, JPEG or BMP files in its class subfolders: put the images "
                        "in one subfolder per class")
    return classes, files, skipped


def _read_folder(path: Path, shape: tuple[int, int, int], resize: bool, limit: int | None
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int, np.ndarray, list[str]]:
    """(x, y, class names, images in the folder, indices taken, notes) of a folder of class subfolders."""
    classes, files, skipped = _folder_files(path)
    h, w, c = shape
    if c not in (1, 3, 4):
        raise DataError(f"--images {path}: the model takes {c}-channel images, which PNG, JPEG and BMP files do not "
                        "hold: pass an .npz of (N, H, W, C) images")
    total = len(files)
    chosen = np.arange(total) if not limit or limit >= total else np.rint(np.linspace(0, total - 1, limit)).astype(int)
    tf = _tensorflow()
    x = np.empty((len(chosen), h, w, c), np.uint8)
    resized = 0
    for row, index in enumerate(chosen):
        image = _decode(tf, files[index][1], c)
        if image.shape[:2] != (h, w):
            if not resize:
                raise DataError(f"--images {path}: {files[index][1]} is {_size_text(image.shape[:2])} (H x W), the "
                                f"model takes {h}x{w}: pass --resize to resize them bilinearly to {h}x{w}")
            image, resized = resize_images(image[None], (h, w))[0], resized + 1
        x[row] = image
    y = np.array([files[index][0] for index in chosen], dtype=np.int64)
    notes = [f"{len(classes)} class folders", f"decoded to {c} channel(s)"]
    if limit and limit < total:
        notes.append("spread evenly over the sorted files")
    if resized:
        notes.append(f"{resized} resized bilinearly (antialiased) to {h}x{w}")
    if skipped:
        notes.append(f"{skipped} other files skipped")
    return x, y, tuple(classes), total, chosen, notes


def _decode(tf: Any, file: Path, channels: int) -> np.ndarray:
    """One image file as uint8 (H, W, channels), one sentence naming the file when it cannot be decoded."""
    try:
        image = tf.io.decode_image(tf.io.read_file(str(file)), channels=channels, dtype=tf.uint8,
                                   expand_animations=False)
        return image.numpy()
    except Exception as exc:  # TensorFlow raises InvalidArgumentError and others on a foreign or truncated file
        raise DataError(f"--images: {file} is not a readable PNG, JPEG or BMP image ({one_line(exc, 120)}): "
                        "replace or remove it") from exc
