"""The content-addressed artifact store: names are hashes, writes are atomic, interrupted writes leave no trace."""

from __future__ import annotations

import numpy as np

from dlcompat.store.artifacts import ArtifactStore


def test_same_bytes_same_path_and_round_trip(tmp_path):
    store = ArtifactStore(tmp_path)
    a = store.put_bytes(b"hello", ".txt")
    b = store.put_bytes(b"hello", ".txt")
    assert a == b and a.startswith("objects/") and a.endswith(".txt")
    assert store.path(a).read_bytes() == b"hello"
    assert store.verify(a)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(store.get_array(store.put_array(arr)), arr)


def test_put_file_moves_the_file_in_and_cleans_the_temp_folder(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.writing(".bin") as tmp:
        tmp.write_bytes(b"\x00" * 100)
        rel = store.put_file(tmp, ".bin")
    assert store.path(rel).stat().st_size == 100
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_interrupted_write_leaves_nothing_in_objects_and_clean_tmp_removes_it(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / "tmp" / "abc.123.part").write_bytes(b"half")
    (tmp_path / "tmp" / "dir").mkdir()
    (tmp_path / "tmp" / "dir" / "artifact.onnx").write_bytes(b"half")
    assert list((tmp_path / "objects").rglob("*.*")) == []
    assert store.clean_tmp() == 2
    assert list((tmp_path / "tmp").iterdir()) == []


def test_verify_detects_a_corrupted_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    rel = store.put_bytes(b"model bytes", ".onnx")
    store.path(rel).write_bytes(b"tampered")
    assert not store.verify(rel)
