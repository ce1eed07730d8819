"""PyTorch and Keras -> Core ML packages on LeNet-5: the conversion succeeds, and the precision shows in the size.

Running a package needs macOS; on Linux the runtime's evaluation is recorded as unavailable
(tests/runtimes/test_mobile_runtimes.py), so what is checked here is what every platform can check.
"""

from __future__ import annotations

import zipfile

import pytest

from .mobile_models import mobile_models


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


def package_files(path):
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_pytorch_coreml_packages_shrink_with_precision(models):
    sizes = {}
    for variant in ("fp32", "fp16", "int8-weights"):
        deployed = models.deploy("torch.coreml", variant, "pytorch")
        names = package_files(deployed.path)
        assert any(n.endswith("Manifest.json") for n in names) and any(n.endswith(".mlmodel") for n in names)
        assert deployed.facts["variant"] == variant and deployed.facts["package"].startswith("mlprogram")
        sizes[variant] = deployed.facts["package_bytes"]
    assert 0.45 < sizes["fp16"] / sizes["fp32"] < 0.6
    assert 0.2 < sizes["int8-weights"] / sizes["fp32"] < 0.35


def test_keras_converts_to_coreml_through_one_concrete_function(models):
    deployed = models.deploy("keras.coreml", "fp32", "tensorflow")
    assert any(n.endswith(".mlmodel") for n in package_files(deployed.path))
    assert deployed.facts["input_layout"] == "NHWC" and deployed.facts["package_bytes"] > 200_000


def test_the_convert_job_records_the_package_size_and_its_success(models, tmp_path):
    """The study's record of a Core ML deployment on Linux: the conversion's success and the package's size."""
    from dlcompat.data.registry import save_npz
    from dlcompat.store.artifacts import ArtifactStore
    from dlcompat.study.jobs import job_function
    from dlcompat.study.jobs.base import JobContext, run_job

    store = ArtifactStore(tmp_path / "store")
    with store.writing(".npz") as tmp:
        save_npz(models.data, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(models.data.input_shape),
                "num_classes": models.data.num_classes}
    source = store.put_bytes(models.source("pytorch").path.read_bytes(), ".pt")
    cell = {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0, "target": "coreml",
            "variant": "torch.coreml (int8-weights)"}
    ctx = JobContext(kind="convert", params={"cell": cell, "converter": "torch.coreml", "variant": "int8-weights"},
                     inputs={"data": data, "model": {"artifact": source}}, artifacts=store)
    outcome = run_job(job_function("convert"), ctx)
    assert outcome.status == "ok", outcome.error
    size = {m.metric: m for m in outcome.measurements}["converted_size"]
    assert size.value == store.path(outcome.outputs["artifact"]).stat().st_size
    assert outcome.outputs["format"] == "coreml" and outcome.outputs["input_layout"] == "NCHW"
