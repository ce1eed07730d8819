"""Hostile model and data files: each is refused with one sentence, nothing in it runs, nothing is stored.

Every file here is real and built in the test: pickles whose `__reduce__` would create a marker file, truncated
and zero-byte copies of real models written by the real frameworks, a Keras model with a Lambda layer, zip
bombs whose members claim (and with zlib really expand to) more than dlcompat unpacks, and IDX/CIFAR files
with wrong magic numbers or lengths. Each goes through every dlcompat loader that reads its kind of file.
"""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcompat.data import archives
from dlcompat.errors import DataError, ModelFileError, UserError
from dlcompat.zoo.registry import build_spec

SPEC = build_spec("lenet1", (28, 28, 1), 10)
#: a zip member that really inflates to 2.2 GiB of zeros (2.2 MB on disk): past archives.MAX_UNPACKED_BYTES
BOMB_BYTES = 2200 << 20


class Payload:
    """Unpickling this creates `marker` (builtins.open in "w" mode): a file that must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _bomb_deflate(size: int) -> bytes:
    """A raw deflate stream that inflates to `size` zero bytes, built from one flushed 1 MiB block."""
    mib = 1 << 20
    assert size % mib == 0
    block_compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_compressor.compress(bytes(mib)) + block_compressor.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    return block * (size // mib) + tail


def add_bomb(source: Path, target: Path, member: str, size: int = BOMB_BYTES) -> None:
    """`target`: the zip `source` plus a deflated member inflating to `size` bytes (its CRC is left wrong: a reader
    would find out only after inflating it all, which dlcompat must never start)."""
    shutil.copyfile(source, target)
    stream = _bomb_deflate(size)
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(member, stream)
    with zipfile.ZipFile(target) as archive:
        local = archive.getinfo(member).header_offset
    data = bytearray(target.read_bytes())
    central = data.rfind(member.encode()) - 46  # the central directory entry: 46 fixed bytes, then the name
    assert data[central: central + 4] == b"PK\x01\x02" and data[local: local + 4] == b"PK\x03\x04"
    struct.pack_into("<H", data, local + 8, zipfile.ZIP_DEFLATED)
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<H", data, central + 10, zipfile.ZIP_DEFLATED)
    struct.pack_into("<I", data, central + 24, size)
    target.write_bytes(bytes(data))
    with zipfile.ZipFile(target) as archive:  # the bomb is what it claims: a real deflate member of `size` bytes
        info = archive.getinfo(member)
        assert info.file_size == size and info.compress_type == zipfile.ZIP_DEFLATED
        with archive.open(info) as handle:
            assert handle.read(1 << 20) == bytes(1 << 20)


def truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


# --- loaders: each takes a path and must raise a UserError -----------------------------------------------
def load_pytorch(path: Path) -> None:
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    PyTorchAdapter().load(SPEC, path)


def load_keras(path: Path) -> None:
    from dlcompat.frameworks.registry import make_adapter

    make_adapter("tensorflow").load(SPEC, path)


def load_flax(path: Path) -> None:
    from dlcompat.frameworks.registry import make_adapter

    make_adapter("jax").load(SPEC, path)


def load_pytensor(path: Path) -> None:
    from dlcompat.frameworks.registry import make_adapter

    make_adapter("pytensor").load(SPEC, path)


def load_theano(path: Path) -> None:
    from dlcompat.frameworks.registry import adapter_class

    adapter_class("theano")().load(SPEC, path)


def load_weights_runtime(path: Path) -> None:
    from dlcompat.runtimes.weights import WeightsRunner

    WeightsRunner(path, framework="pytorch", spec=SPEC).activate()


def load_dataset_npz(path: Path) -> None:
    from dlcompat.data.registry import load_npz

    load_npz(path)


def load_artifact_array(path: Path) -> None:
    from dlcompat.store.artifacts import ArtifactStore

    store = ArtifactStore(tempfile.mkdtemp(prefix="store-"))
    relative = "objects/ab/" + "c" * 62 + ".npy"
    (store.root / "objects" / "ab").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, store.root / relative)
    store.get_array(relative)


def load_onnxruntime(path: Path) -> None:
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

    OnnxRuntimeRunner(path).activate()


def load_litert(path: Path) -> None:
    from dlcompat.runtimes.litert import LiteRTRunner

    LiteRTRunner(path).activate()


def load_executorch(path: Path) -> None:
    from dlcompat.runtimes.executorch import ExecuTorchRunner

    ExecuTorchRunner(path).activate()


NPZ_LOADERS = [load_pytensor, load_theano, load_weights_runtime, load_dataset_npz]


# --- real models to spoil ------------------------------------------------------------------------------
def real_pt(folder: Path) -> Path:
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    adapter = PyTorchAdapter()
    path = folder / "lenet1.pt"
    adapter.save(adapter.build(SPEC, seed=0), path)
    return path


def real_keras(folder: Path) -> Path:
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter("tensorflow")
    path = folder / "lenet1.keras"
    adapter.save(adapter.build(SPEC, seed=0), path)
    return path


def real_flax(folder: Path) -> Path:
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter("jax")
    path = folder / "lenet1.msgpack"
    adapter.save(adapter.build(SPEC, seed=0), path)
    return path


def real_npz(folder: Path) -> Path:
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    adapter = PyTorchAdapter()
    path = folder / "weights.npz"
    np.savez(path, **adapter.get_weights(adapter.build(SPEC, seed=0)))
    return path


def real_onnx(folder: Path) -> Path:
    import onnx

    source = Path(onnx.__file__).parent / "backend/test/data/pytorch-operator/test_operator_maxpool/model.onnx"
    return Path(shutil.copyfile(source, folder / "maxpool.onnx"))


def real_tflite(folder: Path) -> Path:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def double(x: Any) -> Any:
        return x * 2.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double)
    path = folder / "double.tflite"
    path.write_bytes(converter.convert())
    return path


def real_pte(folder: Path) -> Path:
    import torch
    from executorch.exir import to_edge

    class Double(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2.0

    program = to_edge(torch.export.export(Double(), (torch.zeros(1, 4),))).to_executorch()
    path = folder / "double.pte"
    path.write_bytes(program.buffer)
    return path


def keras_with_lambda(folder: Path, marker: Path) -> Path:
    import keras

    def touch(x: Any) -> Any:
        marker.touch()
        return x

    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Lambda(touch)(keras.layers.Flatten()(inputs)))
    path = folder / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran the Lambda once; loading must not run it again
    return path


# --- the hostile files ---------------------------------------------------------------------------------
def _pickles(folder: Path, marker: Path) -> dict[str, Path]:
    import torch

    out = {name: folder / name for name in ("state_pickle.pt", "object_pickle.pth", "pickle.npy", "pickle.npz")}
    state = {"conv1.weight": torch.zeros(4, 1, 5, 5), "conv1.bias": Payload(marker)}
    torch.save(state, out["state_pickle.pt"])
    torch.save(Payload(marker), out["object_pickle.pth"])
    np.save(out["pickle.npy"], np.array([Payload(marker)], dtype=object), allow_pickle=True)
    np.savez(out["pickle.npz"], **{"conv1.weight": np.array([Payload(marker)], dtype=object)})
    return out


def _liar_npz(folder: Path) -> Path:
    """An .npz whose .npy member announces a 64 GiB array in a few bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (1 << 17, 1 << 17)})
    path = folder / "liar.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("conv1.weight.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(64))
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    real = tmp_path_factory.mktemp("real")
    folder = tmp_path_factory.mktemp("hostile")
    marker = tmp_path_factory.mktemp("marker") / "EXECUTED"
    files: dict[str, Path] = _pickles(folder, marker)
    originals = {"pt": real_pt(real), "keras": real_keras(real), "msgpack": real_flax(real),
                 "onnx": real_onnx(real), "tflite": real_tflite(real), "pte": real_pte(real), "npz": real_npz(real)}
    for suffix, source in originals.items():
        files[f"truncated.{suffix}"] = truncated(source, folder / f"truncated.{suffix}")
        files[f"empty.{suffix}"] = folder / f"empty.{suffix}"
        files[f"empty.{suffix}"].write_bytes(b"")
    for suffix, member in (("pt", "lenet1/data/99"), ("keras", "assets/bomb.bin"), ("npz", "bomb.npy")):
        add_bomb(originals[suffix], folder / f"bomb.{suffix}", member)
        files[f"bomb.{suffix}"] = folder / f"bomb.{suffix}"
    files["liar.npz"] = _liar_npz(folder)
    files["lambda.keras"] = keras_with_lambda(folder, marker)
    return {"files": files, "marker": marker, "folder": folder, "originals": originals}


CASES: list[tuple[str, Callable[[Path], None]]] = [
    ("state_pickle.pt", load_pytorch), ("object_pickle.pth", load_pytorch), ("truncated.pt", load_pytorch),
    ("empty.pt", load_pytorch), ("bomb.pt", load_pytorch),
    ("pickle.npy", load_artifact_array),
    *[(name, loader) for name in ("pickle.npy", "pickle.npz", "truncated.npz", "empty.npz", "bomb.npz", "liar.npz")
      for loader in NPZ_LOADERS],
    ("truncated.onnx", load_onnxruntime), ("empty.onnx", load_onnxruntime),
    ("truncated.tflite", load_litert), ("empty.tflite", load_litert),
    ("truncated.pte", load_executorch), ("empty.pte", load_executorch),
    ("truncated.keras", load_keras), ("empty.keras", load_keras), ("bomb.keras", load_keras),
    ("lambda.keras", load_keras),
    ("truncated.msgpack", load_flax), ("empty.msgpack", load_flax),
]


def assert_one_sentence(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, UserError), f"{type(exc).__name__}: {text}"
    assert text and "\n" not in text and len(text) < 700, text
    assert "Traceback" not in text


@pytest.mark.parametrize(("name", "loader"), CASES, ids=[f"{n}-{f.__name__}" for n, f in CASES])
def test_hostile_model_file_is_refused_in_one_sentence(hostile: dict[str, Any], name: str,
                                                       loader: Callable[[Path], None]) -> None:
    path = hostile["files"][name]
    before = sorted(p.name for p in hostile["folder"].iterdir())
    with pytest.raises(UserError) as caught:
        loader(path)
    assert_one_sentence(caught.value)
    assert isinstance(caught.value, DataError if loader is load_dataset_npz else ModelFileError)
    assert not hostile["marker"].exists(), "a payload in the file ran"
    assert sorted(p.name for p in hostile["folder"].iterdir()) == before, "the loader left files behind"


def test_the_spoiled_files_come_from_loadable_originals(hostile: dict[str, Any]) -> None:
    """The truncated and bombed copies are spoiled versions of files the same loaders accept."""
    originals = hostile["originals"]
    load_pytorch(originals["pt"])
    load_keras(originals["keras"])
    load_flax(originals["msgpack"])
    load_pytensor(originals["npz"])
    load_onnxruntime(originals["onnx"])
    load_executorch(originals["pte"])
    load_litert(originals["tflite"])


def test_zip_check_names_the_cap_and_passes_real_archives(hostile: dict[str, Any]) -> None:
    with pytest.raises(archives.ArchiveTooLarge, match=r"2\.1 GiB, over the 2\.0 GiB"):
        archives.check_zip(hostile["files"]["bomb.keras"])
    for suffix in ("pt", "keras", "npz"):
        archives.check_zip(hostile["originals"][suffix])


# --- data files ----------------------------------------------------------------------------------------
def _mnist_copy(shared_data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(shared_data_dir / "mnist", folder)
    return folder


def _spoil_idx(folder: Path, how: str) -> None:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    if how == "magic":
        data = struct.pack(">I", 0x00000803) + data[4:]
    elif how == "short":
        data = data[: len(data) - 7]
    elif how == "long":
        data = data + bytes(3)
    elif how == "empty":
        data = b""
    path.write_bytes(gzip.compress(data) if how != "not-gzip" else data)


@pytest.mark.parametrize("how", ["magic", "short", "long", "empty", "not-gzip"])
def test_broken_idx_file_is_refused_in_one_sentence(shared_data_dir: Path, tmp_path: Path, how: str) -> None:
    from dlcompat.data.registry import load_dataset

    folder = _mnist_copy(shared_data_dir, tmp_path)
    _spoil_idx(folder, how)
    before = sorted(p.name for p in (tmp_path / "data").rglob("*"))
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", tmp_path / "data", download=False)
    assert_one_sentence(caught.value)
    assert "t10k-labels-idx1-ubyte" in str(caught.value)
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == before


def test_gzip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    from dlcompat.data import _files

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    stream = _bomb_deflate(64 << 20)
    bomb.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + struct.pack("<II", 0, (64 << 20)))
    with pytest.raises(DataError, match="unpacks to more than") as caught:
        _files.gunzip(bomb.read_bytes(), bomb, limit=16 << 20)
    assert_one_sentence(caught.value)


def _cifar_folder(shared_data_dir: Path, tmp_path: Path) -> Path:
    """The real CIFAR-10 files, linked (read-only use) into a folder where one batch can be replaced."""
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    for source in (shared_data_dir / "cifar10").iterdir():
        (folder / source.name).symlink_to(source)
    return folder


@pytest.mark.parametrize("how", ["ragged", "empty", "label"])
def test_broken_cifar_batch_is_refused_in_one_sentence(shared_data_dir: Path, tmp_path: Path, how: str) -> None:
    from dlcompat.data.registry import load_dataset

    folder = _cifar_folder(shared_data_dir, tmp_path)
    batch = folder / "test_batch.bin.gz"
    data = bytearray(gzip.decompress(batch.read_bytes()))
    if how == "ragged":
        data = data[:-100]
    elif how == "empty":
        data = bytearray()
    else:
        data[0] = 200  # a label outside 0..9: the wrong file in the right place
    batch.unlink()
    batch.write_bytes(gzip.compress(bytes(data), compresslevel=1))
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", tmp_path / "data", download=False)
    assert_one_sentence(caught.value)
    assert "test_batch.bin" in str(caught.value)


def test_cifar_tarball_member_claiming_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    from dlcompat.data.registry import load_dataset

    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    member = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    member.size = 3 << 30
    raw = member.tobuf(format=tarfile.GNU_FORMAT) + bytes(3073 * 4)
    (folder / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"data_batch_1\.bin") as caught:
        load_dataset("cifar10", tmp_path / "data", download=False)
    assert_one_sentence(caught.value)
