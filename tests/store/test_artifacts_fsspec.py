"""An artifact store rooted at an fsspec URL: nodes write through a local cache, upload atomically, download on read."""

from __future__ import annotations

import time
import uuid

import fsspec
import numpy as np
import pytest

from dlcompat.store.artifacts import STALE_TMP_S, ArtifactStore, artifact_refs


@pytest.fixture(params=["memory", "file"])
def root(request, tmp_path):
    if request.param == "memory":
        url = f"memory://dlcompat-test-{uuid.uuid4().hex[:8]}/artifacts"
        yield url
        fsspec.filesystem("memory").rm(url.removeprefix("memory://").split("/")[0], recursive=True)
    else:
        yield (tmp_path / "shared").as_uri()


def test_a_write_on_one_node_is_read_on_another(root, tmp_path):
    writer = ArtifactStore(root, cache=tmp_path / "cache-a")
    reader = ArtifactStore(root, cache=tmp_path / "cache-b")
    assert writer.location == root and writer.remote is not None
    with writer.writing(".onnx") as tmp:
        tmp.write_bytes(b"model bytes")
        model = writer.put_file(tmp, ".onnx")
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    logits = writer.put_array(array)
    assert not (tmp_path / "cache-b" / model).exists()
    assert reader.path(model).read_bytes() == b"model bytes"  # downloaded into the reader's cache
    np.testing.assert_array_equal(reader.get_array(logits), array)
    assert reader.verify(model) and reader.verify(logits)
    assert writer.put_bytes(b"model bytes", ".onnx") == model  # same bytes, same name, no second upload


def test_nothing_half_written_is_ever_under_objects(root, tmp_path, monkeypatch):
    store = ArtifactStore(root, cache=tmp_path / "cache")
    fs, base = fsspec.core.url_to_fs(root)
    uploads = []
    real_put = fs.put_file

    def watching_put(local, remote, **kwargs):  # what the shared root holds while an upload is under way
        uploads.append(remote)
        real_put(local, remote, **kwargs)
        assert not [p for p in fs.find(f"{base}/objects") if p.endswith(".bin")]

    monkeypatch.setattr(store.remote.fs, "put_file", watching_put)  # fsspec shares its instances: undo after
    relative = store.put_bytes(b"\x01" * 1000, ".bin")
    assert len(uploads) == 1 and "/tmp/" in uploads[0] and uploads[0].endswith(".part")
    assert fs.exists(f"{base}/{relative}") and fs.ls(f"{base}/tmp") == []


def test_a_download_that_does_not_match_its_hash_is_refused(root, tmp_path):
    store = ArtifactStore(root, cache=tmp_path / "cache-a")
    relative = store.put_bytes(b"genuine", ".bin")
    fs, base = fsspec.core.url_to_fs(root)
    with fs.open(f"{base}/{relative}", "wb") as fh:
        fh.write(b"tampered")
    other = ArtifactStore(root, cache=tmp_path / "cache-b")
    assert not other.verify(relative)
    with pytest.raises(OSError, match="does not match its hash"):
        other.path(relative)
    with pytest.raises(FileNotFoundError):
        other.path("objects/00/" + "0" * 62 + ".bin")


def test_clean_tmp_leaves_young_uploads_alone_and_removes_stale_ones(root, tmp_path):
    store = ArtifactStore(root, cache=tmp_path / "cache")
    fs, base = fsspec.core.url_to_fs(root)
    fs.makedirs(f"{base}/tmp", exist_ok=True)
    stale = int((time.time() - 2 * STALE_TMP_S) * 1e9)
    fs.pipe(f"{base}/tmp/artifact.bin.{stale}.abcd1234.part", b"half")
    fs.pipe(f"{base}/tmp/artifact.bin.{time.time_ns()}.abcd1234.part", b"in flight")
    assert store.clean_tmp() == 1
    assert [p.rsplit("/", 1)[1].split(".")[2] for p in fs.ls(f"{base}/tmp", detail=False)] != [str(stale)]
    assert len(fs.ls(f"{base}/tmp", detail=False)) == 1


def test_artifact_refs_finds_every_artifact_named_in_nested_results():
    a, b = "objects/ab/" + "c" * 62 + ".onnx", "objects/01/" + "2" * 62
    data = {"artifact": a, "history": {"loss": [1.0]}, "rows": [{"method": {"source_logits": b}}], "x": "objects/"}
    assert artifact_refs(data) == {a, b}


def test_a_worker_without_fsspec_works_on_the_cache_and_the_executor_publishes(tmp_path, monkeypatch):
    """A URL root never reaches the worker: the executor fetches inputs into the cache and uploads outputs."""
    from dlcompat.study.executors.local import LocalExecutor
    from dlcompat.study.request import JobRequest

    monkeypatch.setenv("DLCOMPAT_ARTIFACT_CACHE", str(tmp_path / "node-cache"))
    shared = (tmp_path / "shared").as_uri()
    upstream = ArtifactStore(shared, cache=tmp_path / "other-node").put_bytes(b"from upstream", ".txt")
    request = JobRequest(kind="fault", env="main", threads=1, timeout_s=60, artifacts_root=shared,
                         params={"fault": "none", "write": "written here"}, inputs={"up": {"artifact": upstream}})
    with LocalExecutor(slots=1, log_dir=tmp_path / "logs") as executor:
        outcome = executor.submit(request, lambda _e: None).result(timeout=120)
    assert outcome.status == "ok", outcome.error
    assert "://" not in outcome.outputs["root_seen"]  # the worker got a plain folder
    assert outcome.outputs["read"] == "from upstream"
    reader = ArtifactStore(shared, cache=tmp_path / "reader")
    assert reader.path(outcome.outputs["artifact"]).read_text() == "written here" and reader.verify(upstream)
