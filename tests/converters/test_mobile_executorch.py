"""PyTorch -> ExecuTorch (`.pte`) on LeNet-5 with real MNIST images, run by ExecuTorch's runtime.

fp32 and int8 (XNNPACK's quantizer, calibrated on training images) are lowered to the XNNPACK
delegate; `portable` keeps ExecuTorch's reference kernels. Each is compared to PyTorch's own logits.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.runtimes.executorch import ExecuTorchRunner

from .mobile_models import CALIBRATION, mobile_models

#: variant -> (p99 |Δlogit| relative to the largest source logit, most label flips of 500)
BOUNDS = {"fp32": (1e-5, 0), "int8": (5e-2, 15), "portable": (1e-5, 0)}


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


@pytest.mark.parametrize("variant", ["fp32", "int8", "portable"])
def test_pytorch_to_executorch_keeps_the_predictions(models, variant):
    deployed = models.deploy("torch.pte", variant, "pytorch")
    with ExecuTorchRunner(deployed.path, input_layout=deployed.facts["input_layout"], threads=1) as runner:
        logits = runner.infer(models.x)
        one = np.asarray(runner.predictor(models.x[:1])()[0])  # batch 1, as the latency method calls it
        info = runner.info()
    source = models.source("pytorch").logits
    result = compare_logits(source, logits)
    rel, flips = BOUNDS[variant]
    assert result.p99_abs_logit_diff <= rel * float(np.abs(source).max()), result
    assert result.label_flips <= flips, result
    assert np.allclose(one, logits[:1], atol=1e-5)
    assert info["delegate"] == ("none" if variant == "portable" else "XNNPACK")
    assert info["intra_op_threads"] == 1
    if variant == "int8":
        assert deployed.facts["calibration_images"] == CALIBRATION
        size = {v: models.deploy("torch.pte", v, "pytorch").path.stat().st_size for v in ("fp32", "int8")}
        assert size["int8"] / size["fp32"] < 0.4
