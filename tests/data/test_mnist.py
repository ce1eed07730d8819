"""MNIST / Fashion-MNIST: the real IDX files, the split rules, and broken files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlcompat.data.registry import load_dataset
from dlcompat.errors import DataError

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist_all(shared_data_dir: Path):
    """Real MNIST with no validation split and no limits: train and test exactly as in the files."""
    return load_dataset("mnist", shared_data_dir, val_fraction=0.0, download=False)


def test_real_mnist_matches_the_published_facts(mnist_all, shared_data_dir: Path) -> None:
    ds = mnist_all
    assert ds.name == "mnist"
    assert ds.train.x.shape == (60000, 28, 28, 1) and ds.test.x.shape == (10000, 28, 28, 1)
    assert ds.val.x.shape == (0, 28, 28, 1)
    assert ds.train.x.dtype == np.uint8 and ds.train.y.dtype == np.int64
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(ds.train.y, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(ds.test.y, minlength=10).tolist() == TEST_COUNTS
    assert ds.test.x.mean() / 255 == pytest.approx(0.132515, abs=1e-6)
    assert ds.train.x.mean() / 255 == pytest.approx(0.130660, abs=1e-6)
    assert "gzipped IDX" in ds.source and str(shared_data_dir / "mnist") in ds.source


def test_val_carve_out_and_limits_follow_the_documented_rule(shared_data_dir: Path, mnist_all) -> None:
    ds = load_dataset("mnist", shared_data_dir, val_fraction=0.1, split_seed=3, limit_train=1000,
                      limit_test=500, download=False)
    order = np.random.default_rng(3).permutation(60000)
    val_idx, train_idx = np.sort(order[:6000]), np.sort(order[6000:7000])
    assert np.array_equal(ds.val.x, mnist_all.train.x[val_idx])
    assert np.array_equal(ds.val.y, mnist_all.train.y[val_idx])
    assert np.array_equal(ds.train.x, mnist_all.train.x[train_idx])
    assert np.array_equal(ds.train.y, mnist_all.train.y[train_idx])
    assert np.array_equal(ds.test.x, mnist_all.test.x[:500])
    assert ds.test.y.tolist() == mnist_all.test.y[:500].tolist()
    # The validation set does not depend on the training limit.
    unlimited = load_dataset("mnist", shared_data_dir, split_seed=3, download=False)
    assert len(unlimited.train) == 54000 and len(unlimited.test) == 10000
    assert np.array_equal(unlimited.val.x, ds.val.x)
    assert np.bincount(np.concatenate([unlimited.train.y, unlimited.val.y])).tolist() == TRAIN_COUNTS


def test_same_arguments_give_byte_identical_arrays(shared_data_dir: Path) -> None:
    a = load_dataset("mnist", shared_data_dir, limit_train=300, limit_test=50, split_seed=7, download=False)
    b = load_dataset("mnist", shared_data_dir, limit_train=300, limit_test=50, split_seed=7, download=False)
    for split in ("train", "val", "test"):
        assert getattr(a, split).x.tobytes() == getattr(b, split).x.tobytes()
        assert getattr(a, split).y.tobytes() == getattr(b, split).y.tobytes()
    c = load_dataset("mnist", shared_data_dir, limit_train=300, limit_test=50, split_seed=8, download=False)
    assert not np.array_equal(a.val.y, c.val.y)


def test_a_folder_holding_just_the_four_files_works(shared_data_dir: Path) -> None:
    ds = load_dataset("mnist", shared_data_dir / "mnist", limit_train=10, limit_test=10, download=False)
    assert ds.test.y.tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_uncompressed_idx_files_load_like_gzipped_ones(tmp_path: Path, tiny_mnist) -> None:
    arrays = tiny_mnist(tmp_path / "gz", gz=True)
    tiny_mnist(tmp_path / "raw" / "mnist", gz=False)
    a = load_dataset("mnist", tmp_path / "gz", val_fraction=0, download=False)
    b = load_dataset("mnist", tmp_path / "raw", val_fraction=0, download=False)
    assert np.array_equal(a.train.x[..., 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(a.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.x, b.test.x)
    assert b.source.startswith("MNIST: IDX files in")


def test_mnist_files_are_refused_as_fashion_mnist(shared_data_dir: Path) -> None:
    with pytest.raises(DataError, match="are MNIST, not Fashion-MNIST"):
        load_dataset("fashion-mnist", shared_data_dir / "mnist", download=False)


def test_fashion_mnist_loads_from_its_own_folder(tmp_path: Path, tiny_mnist) -> None:
    tiny_mnist(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion-mnist", tmp_path, val_fraction=0, download=False)
    assert ds.class_names[0] == "T-shirt/top" and ds.num_classes == 10 and len(ds.train) == 20


@pytest.mark.parametrize(
    ("filename", "mangle", "detail"),
    [
        ("t10k-labels-idx1-ubyte.gz", lambda raw: raw[: len(raw) // 2], "gzip"),
        ("t10k-images-idx3-ubyte.gz", lambda raw: gzip.compress(gzip.decompress(raw)[:-100]), "header"),
        ("train-labels-idx1-ubyte.gz", lambda raw: gzip.compress(b"\x00\x00\x08\x03" + gzip.decompress(raw)[4:]),
         "magic number"),
        ("train-images-idx3-ubyte.gz", lambda raw: gzip.compress(gzip.decompress(raw)[:10]), "header"),
        ("t10k-labels-idx1-ubyte.gz", lambda raw: b"", "gzip"),
    ],
    ids=["truncated-gzip", "truncated-content", "wrong-magic", "truncated-header", "empty"],
)
def test_corrupt_or_truncated_idx_is_a_data_error(tmp_path: Path, tiny_mnist, filename, mangle, detail) -> None:
    tiny_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / filename
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        load_dataset("mnist", tmp_path, download=False)
    message = str(info.value)
    assert str(path) in message and detail in message and "delete it" in message and "\n" not in message


def test_label_and_image_counts_must_agree(tmp_path: Path, tiny_mnist, idx_bytes) -> None:
    tiny_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, dtype=np.uint8))))
    with pytest.raises(DataError, match=r"4 labels but .* 5 images"):
        load_dataset("mnist", tmp_path, download=False)


def test_labels_outside_0_to_9_are_corrupt(tmp_path: Path, tiny_mnist, idx_bytes) -> None:
    tiny_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.full(5, 12, dtype=np.uint8))))
    with pytest.raises(DataError, match="label 12 outside"):
        load_dataset("mnist", tmp_path, download=False)


def test_missing_files_without_download_name_the_folders(tmp_path: Path, tiny_mnist) -> None:
    tiny_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message and "--data-dir" in message and "DLCOMPAT_DATA_DIR" in message
    assert "downloading is turned off" in message and "\n" not in message


def test_a_partial_subfolder_does_not_shadow_a_complete_root(tmp_path: Path, shared_data_dir: Path,
                                                             tiny_mnist) -> None:
    for name in ("t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (tmp_path / "mnist").mkdir(exist_ok=True)
        shutil.copy(shared_data_dir / "mnist" / name, tmp_path / "mnist" / name)
    tiny_mnist(tmp_path)
    ds = load_dataset("mnist", tmp_path, val_fraction=0, download=False)
    assert len(ds.train) == 20 and str(tmp_path) in ds.source
