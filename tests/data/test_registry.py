"""The registry: names, static facts, argument checks, the split rule, the data folder, and npz files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcompat.data import registry
from dlcompat.data.registry import (
    Dataset,
    SourceArrays,
    Split,
    dataset_info,
    dataset_names,
    load_dataset,
    load_npz,
    register_dataset,
    resolve_data_dir,
    save_npz,
)
from dlcompat.errors import DataError


@pytest.fixture
def toy(monkeypatch):
    """A registered toy dataset whose labels are the image indices (so splits can be checked exactly)."""
    dataset_names()  # register the built-in datasets first, so the copy holds them
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    calls = []

    @register_dataset("toy", input_shape=(2, 3, 1), class_names=tuple("ab"), description="toy",
                      citation="none", downloadable=False)
    def load_toy(data_dir: Path, download: bool) -> SourceArrays:
        calls.append((data_dir, download))
        train = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 3, 1), np.uint8)
        test = (200 + np.arange(30, dtype=np.uint8))[:, None, None, None] * np.ones((1, 2, 3, 1), np.uint8)
        return SourceArrays(train, np.arange(100, dtype=np.int64), test, np.arange(200, 230, dtype=np.int64),
                            ("a", "b"), "toy arrays")

    return calls


def test_names_and_static_facts() -> None:
    assert dataset_names() == ["digits", "mnist", "fashion-mnist", "cifar10"]
    facts = {name: dataset_info(name) for name in dataset_names()}
    assert facts["digits"].input_shape == (28, 28, 1) and not facts["digits"].downloadable
    assert facts["mnist"].input_shape == (28, 28, 1) and facts["mnist"].num_classes == 10
    assert facts["cifar10"].input_shape == (32, 32, 3) and facts["cifar10"].class_names[0] == "airplane"
    assert facts["fashion-mnist"].class_names[-1] == "Ankle boot"
    assert all(f.description and f.citation and f.name == n for n, f in facts.items())
    assert dataset_info("CIFAR-10") is facts["cifar10"] and dataset_info("Fashion_MNIST") is facts["fashion-mnist"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="unknown dataset 'imagenet': choose one of digits, mnist, fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(DataError):
        dataset_info("imagenet")


@pytest.mark.parametrize("kwargs", [
    {"limit_train": 0}, {"limit_train": -5}, {"limit_test": 2.5}, {"limit_test": True},
    {"val_fraction": 1.0}, {"val_fraction": -0.1}, {"val_fraction": "0.1"}, {"split_seed": -1},
])
def test_bad_arguments_are_data_errors(toy, kwargs) -> None:
    with pytest.raises(DataError):
        load_dataset("toy", **kwargs)
    assert toy == []  # checked before any file is read


def test_the_split_rule(toy, tmp_path) -> None:
    ds = load_dataset("toy", tmp_path, val_fraction=0.2, split_seed=4, limit_train=30, limit_test=7)
    order = np.random.default_rng(4).permutation(100)
    assert ds.val.y.tolist() == sorted(order[:20].tolist())
    assert ds.train.y.tolist() == sorted(order[20:50].tolist())
    assert ds.test.y.tolist() == list(range(200, 207))
    assert np.array_equal(ds.train.x[:, 1, 2, 0], ds.train.y)  # images travel with their labels
    assert ds.input_shape == (2, 3, 1) and ds.num_classes == 2 and ds.source == "toy arrays"
    assert toy == [(tmp_path, True)]


def test_limits_larger_than_a_split_keep_all_of_it(toy) -> None:
    ds = load_dataset("toy", val_fraction=0.0, limit_train=10**6, limit_test=10**6)
    assert ds.train.y.tolist() == list(range(100)) and len(ds.test) == 30 and len(ds.val) == 0


def test_splits_are_writable_contiguous_copies(toy) -> None:
    ds = load_dataset("toy")
    for split in (ds.train, ds.val, ds.test):
        assert split.x.flags.c_contiguous and split.x.flags.writeable and split.y.flags.writeable


def test_split_checks_dtypes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Split(np.zeros((2, 2, 2, 1), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="int64"):
        Split(np.zeros((2, 2, 2, 1), np.uint8), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        Split(np.zeros((2, 2, 2, 1), np.uint8), np.zeros(3, np.int64))


def test_resolve_data_dir_precedence(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DLCOMPAT_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "dlcompat" / "data"
    monkeypatch.setenv("DLCOMPAT_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert not (tmp_path / "env").exists()


def test_save_and_load_npz_round_trip(toy, tmp_path) -> None:
    ds = load_dataset("toy", limit_train=40)
    path = tmp_path / "sub" / "toy.npz"
    save_npz(ds, path)
    assert [p.name for p in path.parent.iterdir()] == ["toy.npz"]  # no temporary file left
    back = load_npz(path)
    assert isinstance(back, Dataset)
    assert (back.name, back.class_names, back.source) == (ds.name, ds.class_names, ds.source)
    for split in ("train", "val", "test"):
        a, b = getattr(ds, split), getattr(back, split)
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
        assert b.x.dtype == np.uint8 and b.y.dtype == np.int64 and b.x.shape == a.x.shape
    save_npz(ds, path)  # overwriting works
    assert load_npz(path).train.y.tolist() == ds.train.y.tolist()


def test_load_npz_refuses_foreign_and_corrupt_files(toy, tmp_path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("this is not a dataset\n")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array("dlcompat-dataset/1"), name=np.array([{"x": 1}], dtype=object))
    truncated = tmp_path / "truncated.npz"
    save_npz(load_dataset("toy"), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    for path in (text, npy, other, pickled, truncated, empty):
        with pytest.raises(DataError, match="not a dataset file written by dlcompat") as info:
            load_npz(path)
        assert str(path) in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_the_data_package_imports_with_numpy_alone(shared_data_dir) -> None:
    """Importing and using the data layer pulls in no scikit-learn, SciPy, torch or urllib.request."""
    code = (
        "import sys\n"
        "from dlcompat.data import batching, registry, mnist, cifar10, digits, download\n"
        "registry.dataset_names(); registry.dataset_info('digits')\n"
        f"registry.load_dataset('mnist', {str(shared_data_dir)!r}, limit_train=5, download=False)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "               {'scipy', 'sklearn', 'torch', 'tensorflow', 'jax', 'pandas'} or m == 'urllib.request')\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
