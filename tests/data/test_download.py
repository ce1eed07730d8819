"""Checksummed download against a real HTTP server on 127.0.0.1 (DLCOMPAT_DATA_MIRROR points at it)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from dlcompat.data import cifar10, download, mnist
from dlcompat.data.registry import load_dataset
from dlcompat.errors import DataError

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def mirror_dir(tmp_path: Path, shared_data_dir: Path) -> Path:
    """A mirror laid out like a data folder: <mirror>/mnist/<the four real files>."""
    root = tmp_path / "mirror"
    shutil.copytree(shared_data_dir / "mnist", root / "mnist")
    for path in (root / "mnist").iterdir():
        path.chmod(0o644)
    return root


def test_missing_mnist_is_downloaded_and_verified(tmp_path, mirror_dir, http_mirror, monkeypatch) -> None:
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(mirror_dir))
    data_dir = tmp_path / "data"
    ds = load_dataset("mnist", data_dir, limit_train=10, limit_test=10)
    assert ds.test.y.tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(MNIST_FILES)
    for name in MNIST_FILES:
        assert (data_dir / "mnist" / name).read_bytes() == (mirror_dir / "mnist" / name).read_bytes()


def test_only_the_missing_files_are_downloaded(tmp_path, mirror_dir, shared_data_dir, http_mirror,
                                               monkeypatch) -> None:
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    for name in MNIST_FILES[:3]:
        shutil.copy(shared_data_dir / "mnist" / name, target / name)
    for name in MNIST_FILES[:3]:
        (mirror_dir / "mnist" / name).unlink()  # a request for these would now fail
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(mirror_dir))
    ds = load_dataset("mnist", tmp_path / "data", limit_train=5, limit_test=5)
    assert len(ds.test) == 5 and (target / MNIST_FILES[3]).is_file()


def test_a_tampered_download_is_refused_and_leaves_nothing(tmp_path, mirror_dir, shared_data_dir,
                                                           http_mirror, monkeypatch) -> None:
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    for name in MNIST_FILES[:3]:
        shutil.copy(shared_data_dir / "mnist" / name, target / name)
    tampered = mirror_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(tampered.read_bytes())
    data[100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(mirror_dir))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path / "data")
    message = str(info.value)
    assert "checksum does not match" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(target) in message and "\n" not in message
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_FILES[:3])  # no partial or temp file


def test_the_uncompressed_content_is_checked_on_download(tmp_path, mirror_dir, http_mirror,
                                                         monkeypatch) -> None:
    """A file that passes its own checksum is still refused when its gunzipped content is wrong."""
    name = "t10k-labels-idx1-ubyte.gz"
    good = "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(mirror_dir))
    wrong = download.RemoteFile(name, ("unused",), content_check=mnist.gunzipped_sha256_check("0" * 64))
    with pytest.raises(DataError, match="uncompressed content does not match"):
        download.fetch("mnist", wrong, tmp_path / "out", what="the test file was", looked_in=[tmp_path])
    assert not (tmp_path / "out").exists()
    right = download.RemoteFile(name, ("unused",), content_check=mnist.gunzipped_sha256_check(good))
    path = download.fetch("mnist", right, tmp_path / "out", what="the test file was", looked_in=[tmp_path])
    assert path == tmp_path / "out" / name and path.read_bytes() == (mirror_dir / "mnist" / name).read_bytes()


def test_the_cifar_content_check_reads_the_tarball(tmp_path, cifar_records) -> None:
    path = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in cifar_records.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert cifar10.check_tarball_content(path) == "its batches do not match the published checksums"
    path.write_bytes(b"not a tarball")
    assert cifar10.check_tarball_content(path) == "it is not a readable tar.gz archive"


def test_a_cifar_tarball_that_is_not_the_published_one_is_refused(tmp_path, http_mirror, monkeypatch) -> None:
    (tmp_path / "mirror" / "cifar10").mkdir(parents=True)
    with tarfile.open(tmp_path / "mirror" / "cifar10" / "cifar-10-binary.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = 3073
        archive.addfile(info, io.BytesIO(bytes(3073)))
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(tmp_path / "mirror"))
    with pytest.raises(DataError, match="checksum does not match"):
        load_dataset("cifar10", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_nothing_listening_gives_one_sentence_naming_the_folder(tmp_path, closed_port, monkeypatch) -> None:
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{closed_port}")
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir)
    message = str(info.value)
    assert str(data_dir / "mnist") in message and "--data-dir" in message and "DLCOMPAT_DATA_DIR" in message
    assert "could not be downloaded" in message and f"127.0.0.1:{closed_port}" in message
    assert "\n" not in message
    assert not data_dir.exists()  # nothing left behind, not even the folders


def test_a_404_on_the_mirror_is_reported(tmp_path, http_mirror, monkeypatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(download.MIRROR_ENV, http_mirror(tmp_path / "empty"))
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("fashion-mnist", tmp_path / "data")


def test_the_mirror_replaces_the_default_urls(monkeypatch) -> None:
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert download.base_urls("mnist", ["https://a/x", "http://b/y/"]) == ["https://a/x/", "http://b/y/"]
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9/base/")
    assert download.base_urls("mnist", ["https://a/x"]) == ["http://127.0.0.1:9/base/mnist/"]
