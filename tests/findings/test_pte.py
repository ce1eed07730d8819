"""ExecuTorch programs localised layer by layer (`findings.pte_graph` + `ExecuTorchRunner.intermediates`), on the
trained LeNet-5 of `conftest` lowered to XNNPACK: the honest float32 and int8 programs are within noise at every
aligned layer (int8 in its quantisation steps), and a ReLU dropped from a copy is found at its layer."""

from __future__ import annotations

import pytest

from dlcompat.findings.align import align_pte
from dlcompat.findings.hop import localise_hop
from dlcompat.findings.localise import EXCEEDS, WITHIN
from tests.findings.faults import pte_conv_channel_scaled, pte_relu_dropped

pytestmark = [pytest.mark.slow,  # ExecuTorch's export and lowering of each program: about 20 s on 2 cores
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

#: LeNet-5's layers an XNNPACK program holds in tensors of their own (conv / dense fused with their ReLU)
ALIGNED = ["relu1", "pool1", "relu2", "pool2", "flatten", "relu3", "relu4", "fc3"]


def hop(source, path=None):
    return localise_hop(source.spec, source.weights, source.x, path or source.path, "pte", source.floor,
                        input_layout=source.input_layout)


def test_the_float32_program_aligns_inside_its_xnnpack_partitions(torch_lenet5_pte):
    alignment = align_pte(torch_lenet5_pte.path, torch_lenet5_pte.spec)
    assert alignment.format == "pte" and alignment.precision == "float32"
    assert sorted(alignment.tensors()) == sorted(ALIGNED)
    assert alignment.tensors()["relu1"].startswith("xnnpack0/") and alignment.tensors()["relu3"].startswith("xnnpack1/")
    assert "fused into the XNNConv2d" in alignment["conv2"].reason


def test_the_honest_float32_program_is_within_noise_at_every_layer(torch_lenet5_pte):
    result = hop(torch_lenet5_pte)
    judged = {e.name: e for e in result.localisation.layers if e.exceeds is not None}
    assert sorted(judged) == sorted(ALIGNED)
    assert result.verdict == WITHIN, result.to_dict()["layers"]
    assert all(e.unit == "rmse" and e.ratio < 2.5 for e in judged.values())


def test_the_honest_int8_program_is_within_the_int8_floor_in_quantisation_steps(torch_lenet5_pte_int8):
    result = hop(torch_lenet5_pte_int8)
    assert result.localisation.precision == "int8"
    judged = [e for e in result.localisation.layers if e.exceeds is not None]
    assert [e.name for e in judged] == ALIGNED
    assert all(e.unit == "quantisation steps" for e in judged)
    assert result.verdict == WITHIN, result.to_dict()["layers"]
    assert result.output_judged and result.logits["unit"] == "quantisation steps"


def test_a_dropped_relu_is_found_at_its_layer(torch_lenet5_pte, tmp_path):
    source = torch_lenet5_pte
    tensor = align_pte(source.path, source.spec).tensors()["relu2"]
    path = pte_relu_dropped(tensor)(source.path, tmp_path / "faulty.pte")
    result = hop(source, path)
    assert (result.verdict, result.first_divergent_layer) == (EXCEEDS, "relu2"), result.to_dict()["layers"]
    # without its clamp the convolution's tensor is conv2's own (within noise); relu2 is carried on unchanged
    assert all(result.localisation[name].exceeds is False for name in ("relu1", "pool1", "conv2"))
    assert "judged as the identity" in result.localisation["relu2"].reason
    assert result.fault_type == "operator semantics"


def test_a_scaled_conv_channel_is_found_at_its_layer_as_weights(torch_lenet5_pte, tmp_path):
    source = torch_lenet5_pte
    tensor = align_pte(source.path, source.spec).tensors()["relu2"]
    path = pte_conv_channel_scaled(tensor, 1.05)(source.path, tmp_path / "faulty.pte")
    result = hop(source, path)
    assert (result.verdict, result.first_divergent_layer, result.fault_type) == (EXCEEDS, "relu2", "weights")
    assert result.diagnosis["parameter_diffs"]["relu2"]["weight"] > 0.04
    assert result.diagnosis["parameter_diffs"]["relu1"]["weight"] < 1e-6  # read back exactly where untouched


def test_the_study_judges_the_int8_program_by_the_int8_floor(torch_lenet5_pte_int8, mnist_small, tmp_path):
    """The `localize` job of the quick study's `torch.pte (int8)` hop: its output in quantisation steps against the
    int8 floor, within it (so its expected label flips are no finding, `report.findings`)."""
    import json
    import shutil

    from dlcompat.store.artifacts import ArtifactStore
    from dlcompat.study.jobs import localize, noise_floor
    from dlcompat.study.jobs.base import JobContext
    from tests.findings.test_localize_job import IMAGES, _cell, _inputs

    store = ArtifactStore(tmp_path / "artifacts")
    inputs = _inputs(store, torch_lenet5_pte_int8, mnist_small, tmp_path)
    floor = JobContext("noise_floor", {"cell": _cell("pytorch"), "images": IMAGES}, inputs, store)
    noise_floor.run(floor)
    copy = tmp_path / "copy.pte"
    shutil.copyfile(torch_lenet5_pte_int8.path, copy)
    target = {"artifact": store.put_file(copy, ".pte"), "format": "pte", "input_layout": "NCHW"}
    cell = {**_cell("pte"), "variant": "torch.pte (int8)"}
    ctx = JobContext("localize", {"cell": cell, "images": IMAGES}, {**inputs, "floor": floor.outputs,
                                                                    "target": target}, store)
    localize.run(ctx)
    row, _ = ctx.measurements
    assert (row.method["verdict"], row.method["unit"], row.method["precision"]) == \
        ("within noise", "quantisation steps", "int8"), row.method
    stored = json.loads(store.path(row.method["localisation"]).read_text())
    assert stored["logits"]["unit"] == "quantisation steps"
