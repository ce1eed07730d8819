"""TensorFlow.js graph models localised layer by layer (`findings.tfjs_graph` + `TfjsRunner.intermediates`, the
deployed model in headless Chromium, cpu backend), on the trained LeNet-5 of `conftest` through the `keras.tfjs`
edge: every convolution / dense layer is aligned (fused with its bias and ReLU: `_FusedConv2D`, `_FusedMatMul`); the
honest float32, float16 and uint8 archives are within noise at every aligned layer, each in its own units; a scaled
convolution channel and a dropped fused ReLU are found at their layers. Without biases, TensorFlow's optimiser moves
each ReLU after its max pool: the swap is accepted, said per layer, and a ReLU dropped there is still found."""

from __future__ import annotations

import pytest

from dlcompat.findings.align import align_graph
from dlcompat.findings.hop import localise_hop
from dlcompat.findings.localise import EXCEEDS, WITHIN
from dlcompat.findings.model_files import accounts_for
from dlcompat.findings.tfjs_graph import read_tfjs
from tests.findings.tfjs_faults import channel_scaled, edited_tfjs, fused_activation_dropped, relu_dropped

pytestmark = [pytest.mark.slow]  # the tfjs environment's conversions (about 20 s each) and a browser per hop

#: LeNet-5's layers a TF.js graph model holds in nodes of their own (conv / dense fused with their ReLU)
ALIGNED = ["relu1", "pool1", "relu2", "pool2", "flatten", "relu3", "relu4", "fc3"]
#: without biases: the convolutions are nodes of their own, each ReLU moved after its pool (aligned with the pool)
UNBIASED = ["conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"]
UNITS = {"none": "rmse", "float16": "rmse (float16 floor)", "uint8": "rmse (uint8-weights floor)"}


def hop(source, path=None):
    return localise_hop(source.spec, source.weights, source.x, path or source.path, "tfjs", source.floor,
                        input_layout=source.input_layout)


def test_every_weighted_layer_aligns_fused_with_its_relu(keras_lenet5_tfjs):
    source = keras_lenet5_tfjs["none"]
    graph = read_tfjs(source.path)
    alignment = align_graph(graph, source.spec, str(source.path))
    assert (graph.format, graph.input_layout, alignment.precision) == ("tfjs", "NHWC", "float32")
    assert sorted(alignment.tensors()) == sorted(ALIGNED)
    assert accounts_for(alignment, source.spec, graph, every_layer=True)
    assert "fused into the _FusedConv2D" in alignment["conv2"].reason
    assert "fused into the _FusedMatMul" in alignment["fc1"].reason
    assert alignment["flatten"].normalise.flatten_order == "HWC"  # TensorFlow flattens NHWC
    assert [read_tfjs(keras_lenet5_tfjs[v].path).precision for v in ("float16", "uint8")] == ["float16", "uint8"]


@pytest.mark.parametrize("variant", ["none", "float16", "uint8"])
def test_the_honest_archives_are_within_noise_at_every_layer(keras_lenet5_tfjs, variant):
    result = hop(keras_lenet5_tfjs[variant])
    judged = {e.name: e for e in result.localisation.layers if e.exceeds is not None}
    assert sorted(judged) == sorted(ALIGNED)
    assert result.verdict == WITHIN, result.to_dict()["layers"]
    assert all(e.unit == UNITS[variant] for e in judged.values())
    assert result.logits["unit"] == UNITS[variant]


def test_a_scaled_conv_channel_is_found_at_its_layer_as_weights(keras_lenet5_tfjs, tmp_path):
    source = keras_lenet5_tfjs["none"]
    graph = read_tfjs(source.path)
    conv2 = graph.producer(align_graph(graph, source.spec).tensors()["relu2"])
    path = edited_tfjs(source.path, tmp_path / "faulty.tfjs.zip", weight=(conv2.constants[0], channel_scaled(1.05)))
    result = hop(source, path)
    assert (result.verdict, result.first_divergent_layer, result.fault_type) == (EXCEEDS, "relu2", "weights"), \
        result.to_dict()["layers"]
    assert result.localisation["pool1"].exceeds is False
    diffs = result.diagnosis["parameter_diffs"]["relu2"]
    assert diffs["conv2.weight"] > 0.04 and diffs["conv2.bias"] < 1e-6  # read back exactly where untouched


def test_a_dropped_fused_relu_is_found_at_its_layer(keras_lenet5_tfjs, tmp_path):
    source = keras_lenet5_tfjs["none"]
    fc1 = align_graph(read_tfjs(source.path), source.spec).tensors()["relu3"]
    path = edited_tfjs(source.path, tmp_path / "faulty.tfjs.zip", model=fused_activation_dropped(fc1))
    result = hop(source, path)
    assert (result.verdict, result.first_divergent_layer) == (EXCEEDS, "relu3"), result.to_dict()["layers"]
    assert result.localisation["fc1"].exceeds is False  # the node's output is fc1's own now
    assert "judged as the identity" in result.localisation["relu3"].reason
    assert result.fault_type == "operator semantics"


def test_relus_moved_after_their_pools_are_accepted_and_said(keras_lenet5_tfjs_unbiased):
    source = keras_lenet5_tfjs_unbiased
    alignment = align_graph(read_tfjs(source.path), source.spec, str(source.path))
    assert sorted(alignment.tensors()) == sorted(UNBIASED)
    for relu, pool in (("relu1", "pool1"), ("relu2", "pool2")):
        assert alignment[relu].reason.startswith(f"swapped by the converter's optimiser with '{pool}'")
        assert alignment[pool].group == (relu, pool) and alignment[pool].op == "Relu"
    result = hop(source)
    assert result.verdict == WITHIN, result.to_dict()["layers"]
    assert sorted(e.name for e in result.localisation.layers if e.exceeds is False) == sorted(UNBIASED)


def test_a_dropped_swapped_relu_is_found_at_its_layer(keras_lenet5_tfjs_unbiased, tmp_path):
    source = keras_lenet5_tfjs_unbiased
    relu = align_graph(read_tfjs(source.path), source.spec).tensors()["pool1"]  # the Relu node after the pool
    path = edited_tfjs(source.path, tmp_path / "faulty.tfjs.zip", model=relu_dropped(relu))
    result = hop(source, path)
    assert (result.verdict, result.first_divergent_layer) == (EXCEEDS, "relu1"), result.to_dict()["layers"]
    assert result.localisation["conv1"].exceeds is False
    assert "judged as the identity" in result.localisation["relu1"].reason
    assert result.fault_type == "operator semantics"


def test_the_study_localises_tfjs_archives(keras_lenet5_tfjs, mnist_small, tmp_path):
    """The `localize` job of a study's `keras.tfjs` hops: the honest uint8 archive is within its affine-weights floor
    (its expected rounding is no finding), a scaled convolution channel is localised and typed."""
    import shutil

    from dlcompat.store.artifacts import ArtifactStore
    from dlcompat.study.jobs import localize, noise_floor
    from dlcompat.study.jobs.base import JobContext
    from dlcompat.study.plan import LOCALISED_FORMATS
    from tests.findings.test_localize_job import IMAGES, _cell, _inputs

    assert "tfjs" in LOCALISED_FORMATS
    source = keras_lenet5_tfjs["none"]
    store = ArtifactStore(tmp_path / "artifacts")
    inputs = _inputs(store, source, mnist_small, tmp_path)
    floor = JobContext("noise_floor", {"cell": _cell("pytorch"), "images": IMAGES}, inputs, store)
    noise_floor.run(floor)

    def localise(path, variant):
        copy = tmp_path / "copy.tfjs.zip"  # put_file moves its file into the store
        shutil.copyfile(path, copy)
        target = {"artifact": store.put_file(copy, ".zip"), "format": "tfjs", "input_layout": "NHWC"}
        cell = {**_cell("tfjs"), "variant": f"keras.tfjs ({variant})"}
        ctx = JobContext("localize", {"cell": cell, "images": IMAGES},
                         {**inputs, "floor": floor.outputs, "target": target}, store)
        localize.run(ctx)
        return ctx.measurements[0]

    honest = localise(keras_lenet5_tfjs["uint8"].path, "uint8")
    assert (honest.method["verdict"], honest.method["unit"], honest.method["precision"]) == \
        ("within noise", "rmse (uint8-weights floor)", "uint8"), honest.method
    graph = read_tfjs(source.path)
    conv2 = graph.producer(align_graph(graph, source.spec).tensors()["relu2"])
    faulty = localise(edited_tfjs(source.path, tmp_path / "faulty.tfjs.zip",
                                  weight=(conv2.constants[0], channel_scaled(1.5))), "none")
    assert (faulty.method["verdict"], faulty.method["first_divergent_layer"], faulty.method["fault_type"]) == \
        (EXCEEDS, "relu2", "weights"), faulty.method


def test_dlcompat_localize_takes_a_tfjs_archive_as_the_candidate(keras_lenet5_tfjs, tmp_path):
    """`dlcompat localize model.keras model.tfjs.zip`: the archive recognised by what it holds, run in the page."""
    import numpy as np

    from dlcompat.errors import ModelFileError
    from dlcompat.findings.hop import localise_files

    source = keras_lenet5_tfjs["none"]
    images = tmp_path / "images.npz"
    np.savez(images, x=source.x)
    result = localise_files(source.native, source.path, images)
    assert (result.format, result.input_layout, result.verdict) == ("tfjs", "NHWC", WITHIN), result.to_dict()
    with pytest.raises(ModelFileError, match="weights are not read back as a reference"):
        localise_files(source.path, source.path, images)
