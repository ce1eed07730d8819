"""The dataset registry: names, static facts, and `load_dataset`, which turns a loader's files into splits.

A loader module registers itself with `register_dataset`; `load_dataset` calls the loader for the
original train and test arrays and then cuts the splits the same way for every dataset:

- **val** is carved out of the original train split with ``np.random.default_rng(split_seed)``: a
  seeded permutation of the train indices, whose first ``round(val_fraction * n_train)`` entries
  are the validation images;
- **train** is the rest of that permutation; ``limit_train=N`` keeps its first N entries (so the
  subset is a seeded random sample, and the validation set does not depend on the limit);
- **test** is the official test split; ``limit_test=N`` keeps its first N images in original order.

Every split then lists its images in their original relative order (the selected indices are sorted),
so ``val_fraction=0`` with no limit gives the train split exactly as it is stored in the files.
Shuffling for training is `dlcompat.data.batching.batch_order`'s job. The same arguments always give
byte-identical arrays.

This module imports NumPy and the standard library only; scikit-learn and SciPy are imported by
the digits loader when it runs.
"""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcompat.data import _files
from dlcompat.data.archives import check_zip
from dlcompat.errors import DataError

__all__ = [
    "Dataset",
    "DatasetInfo",
    "SourceArrays",
    "Split",
    "dataset_info",
    "dataset_names",
    "load_dataset",
    "load_npz",
    "register_dataset",
    "resolve_data_dir",
    "save_npz",
]

resolve_data_dir = _files.resolve_data_dir

# The modules that register the built-in datasets, imported on first use (in this order, which is the
# order of `dataset_names()`).
_BUILTIN_LOADER_MODULES = ("dlcompat.data.digits", "dlcompat.data.mnist", "dlcompat.data.cifar10")

_NPZ_FORMAT = "dlcompat-dataset/1"
_SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` uint8 images NHWC ``(N, H, W, C)``, ``y`` int64 labels ``(N,)``."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise ValueError(f"Split.x must be a uint8 NHWC array, got {_describe(self.x)}")
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.ndim != 1:
            raise ValueError(f"Split.y must be an int64 vector, got {_describe(self.y)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"Split has {len(self.x)} images but {len(self.y)} labels")

    def __repr__(self) -> str:
        return f"Split(x={_describe(self.x)}, y={_describe(self.y)})"

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: three splits, the class names, and a one-line note of where it came from."""

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={len(self.train)}, val={len(self.val)}, "
                f"test={len(self.test)}, input_shape={self.input_shape}, classes={self.num_classes}, "
                f"source={self.source!r})")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(H, W, C)``."""
        h, w, c = self.train.x.shape[1:]
        return (int(h), int(w), int(c))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it."""

    name: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    description: str
    citation: str
    downloadable: bool
    aliases: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True, eq=False)
class SourceArrays:
    """What a loader returns: the original train and test splits in file order, before any carving."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    source: str


# A loader gets the resolved data folder and the download flag, and returns the original splits.
Loader = Callable[[Path, bool], SourceArrays]


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    loader: Loader
    rank: tuple[int, int]  # (built-in module position or after them, registration sequence): the list order


_REGISTRY: dict[str, _Entry] = {}
_ALIASES: dict[str, str] = {}
_builtins_loaded = False


def register_dataset(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    class_names: tuple[str, ...],
    description: str,
    citation: str,
    downloadable: bool,
    aliases: tuple[str, ...] = (),
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(data_dir, download) -> SourceArrays`` under ``name``."""
    info = DatasetInfo(name=name, input_shape=tuple(input_shape), class_names=tuple(class_names),
                       description=description, citation=citation, downloadable=downloadable,
                       aliases=tuple(aliases))

    def decorator(loader: Loader) -> Loader:
        old = _REGISTRY.get(name)
        if old is not None and _qualified(old.loader) != _qualified(loader):
            raise ValueError(f"dataset {name!r} is already registered by {_qualified(old.loader)}")
        module = getattr(loader, "__module__", "")
        builtin = _BUILTIN_LOADER_MODULES.index(module) if module in _BUILTIN_LOADER_MODULES else 99
        sequence = old.rank[1] if old is not None else len(_REGISTRY)
        _REGISTRY[name] = _Entry(info, loader, (builtin, sequence))
        for alias in info.aliases:
            _ALIASES[alias] = name
        return loader

    return decorator


def dataset_names() -> list[str]:
    """The registered dataset names, built-in ones first: digits, mnist, fashion-mnist, cifar10."""
    _load_builtins()
    return sorted(_REGISTRY, key=lambda name: _REGISTRY[name].rank)


def dataset_info(name: str) -> DatasetInfo:
    """Static facts about ``name`` (shape, classes, description, citation); reads no data files."""
    return _entry(name).info


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    download: bool = True,
) -> Dataset:
    """Load dataset ``name`` from its original files and cut it into train, val and test splits.

    ``data_dir``: the folder holding the files (see `resolve_data_dir`); a dataset's files are looked
    for in ``<data_dir>/<name>/`` and then directly in ``<data_dir>/``. Missing files are downloaded
    (checksummed) into ``<data_dir>/<name>/`` unless ``download=False``.

    Splits (the same for every dataset, deterministic for the same arguments):

    - ``val``: ``round(val_fraction * n_train)`` images of the original train split, chosen by a
      permutation seeded with ``split_seed``; ``0 <= val_fraction < 1``;
    - ``train``: the rest of that permutation; ``limit_train=N`` keeps its first N entries (a seeded
      random sample that never overlaps ``val``, which does not change with the limit);
    - ``test``: the official test split; ``limit_test=N`` keeps its first N images in original order.

    Limits larger than a split keep all of it; ``None`` keeps all. Within each split the images keep
    their original relative order. Arrays are uint8 NHWC images and int64 labels.
    """
    entry = _entry(name)
    _check_limit("limit_train", limit_train)
    _check_limit("limit_test", limit_test)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.floating)) \
            or not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"val_fraction must be a number from 0 up to (not including) 1, not "
                        f"{val_fraction!r}: pass for example 0.1")
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise DataError(f"split_seed must be a non-negative integer, not {split_seed!r}: pass for example 0")

    src = entry.loader(resolve_data_dir(data_dir), download)
    n_train = len(src.train_y)
    n_val = round(float(val_fraction) * n_train)
    if n_train - n_val < 1:
        raise DataError(f"{entry.info.name} has {n_train} training images, so val_fraction={val_fraction} "
                        "leaves none to train on: lower val_fraction")

    order = np.random.default_rng(int(split_seed)).permutation(n_train)
    val_idx = np.sort(order[:n_val])
    train_idx = np.sort(order[n_val:][:limit_train])
    n_test = len(src.test_y) if limit_test is None else min(limit_test, len(src.test_y))

    return Dataset(
        name=entry.info.name,
        train=_take(src.train_x, src.train_y, train_idx),
        val=_take(src.train_x, src.train_y, val_idx),
        test=Split(np.array(src.test_x[:n_test], dtype=np.uint8, order="C"),
                   np.array(src.test_y[:n_test], dtype=np.int64)),
        class_names=tuple(src.class_names),
        source=src.source,
    )


def save_npz(dataset: Dataset, path: str | os.PathLike[str]) -> None:
    """Write ``dataset`` to a compressed ``.npz`` (no pickled objects), atomically: a reader sees the
    old file or the complete new one, never a partial one. ``load_npz`` reads it back."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(_NPZ_FORMAT),
        "name": np.array(dataset.name),
        "source": np.array(dataset.source),
        "class_names": np.array(list(dataset.class_names), dtype=str),
    }
    for split in _SPLITS:
        part: Split = getattr(dataset, split)
        arrays[f"{split}_x"] = part.x
        arrays[f"{split}_y"] = part.y
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _files.atomic_path(path) as tmp, open(tmp, "xb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise DataError(f"cannot write the dataset file {path} ({exc.strerror or exc}): "
                        "choose a writable location") from exc


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    """Read a dataset written by `save_npz` (never unpickles); a missing, corrupt or foreign file is a
    `DataError`."""
    path = Path(path)
    foreign = DataError(f"{path} is not a dataset file written by dlcompat's save_npz, or it is corrupt: "
                        "write it again with save_npz, or point to the right file")
    if not path.is_file():
        raise DataError(f"the dataset file {path} does not exist: check the path, or write it with save_npz")
    try:
        check_zip(path)  # a zip bomb is refused before NumPy unpacks a member
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise foreign from exc
    if isinstance(loaded, np.ndarray):
        raise foreign
    try:
        with loaded as npz:
            if "format" not in npz.files or str(npz["format"][()]) != _NPZ_FORMAT:
                raise foreign
            splits = {s: Split(npz[f"{s}_x"], npz[f"{s}_y"]) for s in _SPLITS}
            dataset = Dataset(name=str(npz["name"][()]), source=str(npz["source"][()]),
                              class_names=tuple(str(c) for c in npz["class_names"]), **splits)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise foreign from exc
    shapes = {getattr(dataset, s).x.shape[1:] for s in _SPLITS}
    if len(shapes) != 1:
        raise foreign
    return dataset


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_LOADER_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def _entry(name: str) -> _Entry:
    _load_builtins()
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(dataset_names())}")
    return _REGISTRY[key]


def _check_limit(label: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{label} must be a positive whole number of images (or None for all), "
                        f"not {value!r}: pass for example 1000")


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
    return Split(np.ascontiguousarray(x[idx], dtype=np.uint8), np.asarray(y[idx], dtype=np.int64))


def _qualified(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
