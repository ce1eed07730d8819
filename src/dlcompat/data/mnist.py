"""MNIST and Fashion-MNIST from their original files: four IDX files, gzipped or not.

The IDX format (LeCun et al.): a big-endian header — magic ``0x000008NN`` (``08`` = unsigned byte,
``NN`` = number of dimensions), then one uint32 per dimension — followed by the raw bytes. Both
datasets use the same four file names, so each is kept in its own folder (``<data_dir>/mnist/``,
``<data_dir>/fashion-mnist/``); a label file that is known to belong to the other dataset is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcompat.data import _files
from dlcompat.data.download import RemoteFile, fetch, missing_error
from dlcompat.data.registry import SourceArrays, register_dataset
from dlcompat.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_MAGIC = {TRAIN_IMAGES: IMAGES_MAGIC, TRAIN_LABELS: LABELS_MAGIC, TEST_IMAGES: IMAGES_MAGIC,
          TEST_LABELS: LABELS_MAGIC}


@dataclass(frozen=True)
class _Published:
    """Published checksums of one file: of the .gz as served, and of its uncompressed content."""

    md5: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None


@dataclass(frozen=True)
class IdxDataset:
    name: str
    title: str
    urls: tuple[str, ...]
    published: dict[str, _Published]

    def fingerprints(self) -> set[str]:
        """Digests that identify this dataset's label files (to catch the other dataset's files)."""
        out: set[str] = set()
        for filename in (TRAIN_LABELS, TEST_LABELS):
            p = self.published[filename]
            out.update(d for d in (p.md5, p.sha256, p.content_sha256) if d)
        return out


MNIST = IdxDataset(
    name="mnist",
    title="MNIST",
    urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    published={
        TRAIN_IMAGES: _Published(
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            content_sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        TRAIN_LABELS: _Published(
            md5="d53e105ee54ea40749a09fcbcd1e9432",
            sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            content_sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        TEST_IMAGES: _Published(
            md5="9fb629c4189551a2d022fa330f9573f3",
            sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            content_sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        TEST_LABELS: _Published(
            md5="ec29112dd5afa0611ce80d1b7f02629c",
            sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            content_sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    published={
        TRAIN_IMAGES: _Published(md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        TRAIN_LABELS: _Published(md5="25c81989df183df01b3e8a0aad5dffbe"),
        TEST_IMAGES: _Published(md5="bef4ecab320f06d8554ea6380940ec79"),
        TEST_LABELS: _Published(md5="bb300cfdad3c16e7a12a480ee83cd310"),
    },
)

_IDX_DATASETS = (MNIST, FASHION_MNIST)

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


@register_dataset(
    "mnist",
    input_shape=(28, 28, 1),
    class_names=DIGIT_CLASSES,
    description="MNIST handwritten digits: 60,000 train and 10,000 test 28x28 grayscale images, 10 classes",
    citation="Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits, "
             "http://yann.lecun.com/exdb/mnist/",
    downloadable=True,
)
def load_mnist(data_dir: Path, download: bool) -> SourceArrays:
    return load_idx_dataset(MNIST, data_dir, download, DIGIT_CLASSES)


@register_dataset(
    "fashion-mnist",
    input_shape=(28, 28, 1),
    class_names=FASHION_CLASSES,
    description="Fashion-MNIST Zalando article images: 60,000 train and 10,000 test 28x28 grayscale images, "
                "10 classes",
    citation="H. Xiao, K. Rasul, R. Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
             "Learning Algorithms, arXiv:1708.07747, 2017",
    downloadable=True,
    aliases=("fashion_mnist", "fashionmnist"),
)
def load_fashion_mnist(data_dir: Path, download: bool) -> SourceArrays:
    return load_idx_dataset(FASHION_MNIST, data_dir, download, FASHION_CLASSES)


def load_idx_dataset(spec: IdxDataset, data_dir: Path, download: bool,
                     class_names: tuple[str, ...]) -> SourceArrays:
    """Find (or download) the four files of ``spec`` and parse them; file order is kept."""
    paths = _locate(spec, data_dir, download)
    contents = {f: _files.read_bytes(p) for f, p in paths.items()}
    _refuse_other_dataset(spec, paths, contents)
    arrays = {f: parse_idx(contents[f], paths[f], _MAGIC[f]) for f in FILES}
    train_x = _images(arrays[TRAIN_IMAGES], paths[TRAIN_IMAGES])
    test_x = _images(arrays[TEST_IMAGES], paths[TEST_IMAGES])
    train_y = _labels(arrays[TRAIN_LABELS], paths[TRAIN_LABELS], len(train_x), paths[TRAIN_IMAGES])
    test_y = _labels(arrays[TEST_LABELS], paths[TEST_LABELS], len(test_x), paths[TEST_IMAGES])
    kind = "gzipped IDX" if paths[TRAIN_IMAGES].name.endswith(".gz") else "IDX"
    return SourceArrays(train_x, train_y, test_x, test_y, class_names,
                        source=f"{spec.title}: {kind} files in {paths[TRAIN_IMAGES].parent}")


def parse_idx(data: bytes, path: Path | str, magic: int) -> np.ndarray:
    """An IDX file's array (a read-only view of ``data``); a wrong magic number or size is a `DataError`."""
    if len(data) < 4:
        raise _files.corrupt(path, f"{len(data)} bytes, shorter than an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise _files.corrupt(path, f"magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _files.corrupt(path, f"{len(data)} bytes, shorter than its {header}-byte IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise _files.corrupt(path, f"{len(data)} bytes where its header {dims} announces {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _images(array: np.ndarray, path: Path) -> np.ndarray:
    if array.shape[1:] != (28, 28):
        raise _files.corrupt(path, f"images of {array.shape[1:]} pixels, expected 28x28")
    return array[..., np.newaxis]


def _labels(array: np.ndarray, path: Path, n_images: int, images_path: Path) -> np.ndarray:
    if len(array) != n_images:
        raise DataError(f"{path} holds {len(array)} labels but {images_path} holds {n_images} images: one of "
                        "them is corrupt or from another dataset, so delete both so they are downloaded "
                        "again, or replace them")
    if len(array) and int(array.max()) > 9:
        raise _files.corrupt(path, f"label {int(array.max())} outside 0..9")
    return array.astype(np.int64)


def _locate(spec: IdxDataset, data_dir: Path, download: bool) -> dict[str, Path]:
    dirs = _files.candidate_dirs(data_dir, spec.name)

    def probe(folder: Path) -> dict[str, Path] | None:
        found = {f: _files.find_file(folder, f) for f in FILES}
        return found if all(found.values()) else None  # type: ignore[return-value]

    found = _files.locate(dirs, probe)
    if found is not None:
        return found
    target = dirs[0]
    what = f"the {spec.title} files ({', '.join(FILES)}, gzipped or not) were"
    if not download:
        raise missing_error(what, dirs, target, "downloading is turned off")
    for filename in FILES:
        if _files.find_file(target, filename) is None:
            pub = spec.published[filename]
            remote = RemoteFile(
                filename, spec.urls, md5=pub.md5, sha256=pub.sha256,
                content_check=gunzipped_sha256_check(pub.content_sha256) if pub.content_sha256 else None)
            fetch(spec.name, remote, target, what=what, looked_in=dirs)
    found = probe(target)
    if found is None:  # pragma: no cover - fetch raises instead
        raise missing_error(what, dirs, target, "the download did not complete")
    return found


def gunzipped_sha256_check(expected: str) -> Callable[[Path], str | None]:
    """A `RemoteFile.content_check`: the sha256 of the gunzipped file must be ``expected``."""

    def check(path: Path) -> str | None:
        try:
            content = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            return "it is not a valid gzip file"
        if hashlib.sha256(content).hexdigest() != expected:
            return "its uncompressed content does not match the published checksum"
        return None

    return check


def _refuse_other_dataset(spec: IdxDataset, paths: dict[str, Path], contents: dict[str, bytes]) -> None:
    """Both datasets use the same file names; refuse label files known to be the other dataset's."""
    for filename in (TRAIN_LABELS, TEST_LABELS):
        path = paths[filename]
        raw = path.read_bytes() if path.name.endswith(".gz") else contents[filename]
        digests = {hashlib.md5(raw).hexdigest(), hashlib.sha256(raw).hexdigest(),
                   hashlib.sha256(contents[filename]).hexdigest()}
        for other in _IDX_DATASETS:
            if other is not spec and digests & other.fingerprints():
                raise DataError(f"the files in {path.parent} are {other.title}, not {spec.title} (both "
                                f"use the same file names): put the {spec.title} files in a folder of their "
                                f"own, such as <data_dir>/{spec.name}/, and the {other.title} ones in "
                                f"<data_dir>/{other.name}/")
