"""CIFAR-10 binary version: the real batches, the tarball and folder forms, and broken records."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlcompat.data.registry import load_dataset
from dlcompat.errors import DataError

BATCHES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def decode_record(record: bytes) -> tuple[int, np.ndarray]:
    """One record decoded pixel by pixel, independently of the loader: (label, 32x32x3 image)."""
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    for channel in range(3):
        for row in range(32):
            for col in range(32):
                image[row, col, channel] = record[1 + channel * 1024 + row * 32 + col]
    return record[0], image


def write_tarball(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def cifar_all(shared_data_dir: Path):
    return load_dataset("cifar10", shared_data_dir, val_fraction=0.0, download=False)


def test_real_cifar10_matches_the_published_facts(cifar_all, shared_data_dir: Path) -> None:
    ds = cifar_all
    assert ds.train.x.shape == (50000, 32, 32, 3) and ds.test.x.shape == (10000, 32, 32, 3)
    assert ds.train.x.dtype == np.uint8 and ds.test.y.dtype == np.int64
    assert ds.input_shape == (32, 32, 3) and ds.class_names == CLASSES
    assert ds.train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert ds.test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert ds.train.x[0, 0, 0].tolist() == [59, 62, 63]
    assert np.bincount(ds.train.y).tolist() == [5000] * 10
    assert np.bincount(ds.test.y).tolist() == [1000] * 10
    mean = ds.test.x.reshape(-1, 3).mean(axis=0) / 255
    assert mean == pytest.approx([0.494214, 0.485131, 0.450409], abs=1e-6)
    assert str(shared_data_dir / "cifar10") in ds.source


def test_records_become_nhwc_images(cifar_all, cifar_records) -> None:
    for batch, offset in (("data_batch_1.bin", 0), ("data_batch_3.bin", 20000)):
        for k in (0, 6):
            label, image = decode_record(cifar_records[batch][k * 3073:(k + 1) * 3073])
            assert cifar_all.train.y[offset + k] == label
            assert np.array_equal(cifar_all.train.x[offset + k], image)
    label, image = decode_record(cifar_records["test_batch.bin"][:3073])
    assert cifar_all.test.y[0] == label and np.array_equal(cifar_all.test.x[0], image)


def _expected_small(cifar_records):
    train = [decode_record(cifar_records[b][k * 3073:(k + 1) * 3073]) for b in BATCHES[:5] for k in range(7)]
    test = [decode_record(cifar_records["test_batch.bin"][k * 3073:(k + 1) * 3073]) for k in range(7)]
    return train, test


def _assert_small(ds, cifar_records) -> None:
    train, test = _expected_small(cifar_records)
    assert ds.train.y.tolist() == [label for label, _ in train]
    assert np.array_equal(ds.train.x, np.stack([image for _, image in train]))
    assert ds.test.y.tolist() == [label for label, _ in test]
    assert np.array_equal(ds.test.x, np.stack([image for _, image in test]))
    assert ds.class_names == CLASSES


def test_the_original_tarball_form_loads(tmp_path: Path, cifar_records, cifar_meta) -> None:
    (tmp_path / "cifar10").mkdir()
    write_tarball(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", {**cifar_records, "batches.meta.txt": cifar_meta})
    ds = load_dataset("cifar10", tmp_path, val_fraction=0, download=False)
    _assert_small(ds, cifar_records)
    assert "cifar-10-binary.tar.gz" in ds.source


def test_the_extracted_folder_form_loads(tmp_path: Path, cifar_records, cifar_meta) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, data in cifar_records.items():
        (folder / name).write_bytes(data)
    (folder / "batches.meta.txt").write_bytes(cifar_meta)
    ds = load_dataset("cifar10", tmp_path, val_fraction=0, download=False)
    _assert_small(ds, cifar_records)


def test_gzipped_batches_without_meta_load(tmp_path: Path, cifar_records) -> None:
    for name, data in cifar_records.items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(data))
    ds = load_dataset("cifar10", tmp_path, val_fraction=0, download=False)
    _assert_small(ds, cifar_records)


def test_limits_and_val_apply_to_cifar(tmp_path: Path, cifar_records) -> None:
    for name, data in cifar_records.items():
        (tmp_path / name).write_bytes(data)
    ds = load_dataset("cifar10", tmp_path, val_fraction=0.2, limit_train=10, limit_test=3, download=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (10, 7, 3)


def test_a_wrong_record_size_is_a_data_error(tmp_path: Path, cifar_records) -> None:
    for name, data in cifar_records.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "data_batch_2.bin").write_bytes(cifar_records["data_batch_2.bin"] + b"\x00" * 5)
    with pytest.raises(DataError, match=r"corrupt or truncated .*not a whole number of 3073-byte records"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_label_above_9_is_a_data_error(tmp_path: Path, cifar_records) -> None:
    for name, data in cifar_records.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "test_batch.bin").write_bytes(b"\x0a" + cifar_records["test_batch.bin"][1:])
    with pytest.raises(DataError, match="label 10 outside"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_tarball_missing_a_batch_is_a_data_error(tmp_path: Path, cifar_records) -> None:
    members = {k: v for k, v in cifar_records.items() if k != "data_batch_4.bin"}
    write_tarball(tmp_path / "cifar-10-binary.tar.gz", members)
    with pytest.raises(DataError, match=r"lacks data_batch_4\.bin"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_truncated_tarball_is_a_data_error(tmp_path: Path, cifar_records) -> None:
    path = tmp_path / "cifar-10-binary.tar.gz"
    write_tarball(path, cifar_records)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_bad_meta_file_is_a_data_error(tmp_path: Path, cifar_records) -> None:
    for name, data in cifar_records.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="2 class names"):
        load_dataset("cifar10", tmp_path, download=False)


def test_missing_cifar_without_download_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(info.value)
    assert "cifar-10-binary.tar.gz" in message and str(tmp_path / "cifar10") in message
    assert "--data-dir" in message and "\n" not in message
    assert not (tmp_path / "cifar10").exists()
