"""ExecuTorch's intermediate tensors (`runtimes.pte_program`): the tapped copy of a real XNNPACK-delegated LeNet-5
program computes the deployed program's logits bit for bit (float32 and int8), hands back the tensors inside its
partitions, and the first convolution's tensor matches PyTorch's own activation of that layer."""

from __future__ import annotations

import numpy as np
import pytest
from tests.converters.mobile_models import mobile_models

from dlcompat.runtimes.executorch import ExecuTorchRunner
from dlcompat.runtimes.pte_program import computed_tensors, output_quantisation, read_program, tapped_program

pytestmark = [pytest.mark.slow,  # ExecuTorch's export and lowering of each program: about 20 s on 2 cores
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
IMAGES = 16


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_the_tapped_copy_computes_the_deployed_logits_bit_for_bit(models, variant):
    from executorch.runtime import Runtime

    deployed = models.deploy("torch.pte", variant, "pytorch")
    program = read_program(deployed.path)
    names = computed_tensors(program)
    assert any(name.startswith("xnnpack0/") for name in names)
    data, order = tapped_program(deployed.path, names)
    assert sorted(order) == sorted(names)
    x = np.ascontiguousarray(models.x[:IMAGES].transpose(0, 3, 1, 2))
    import torch

    tapped = Runtime.get().load_program(data).load_method("forward").execute([torch.from_numpy(x)])
    own = Runtime.get().load_program(deployed.path).load_method("forward").execute([torch.from_numpy(x)])
    assert len(tapped) == 1 + len(names)
    assert np.array_equal(tapped[0].numpy(), own[0].numpy())
    assert (output_quantisation(program) is not None) == (variant == "int8")


def test_the_first_convolution_matches_pytorch(models):
    from dlcompat.runtimes.native import NativeRunner

    deployed = models.deploy("torch.pte", "fp32", "pytorch")
    x = models.x[:IMAGES]
    with ExecuTorchRunner(deployed.path, input_layout=deployed.facts["input_layout"]) as runner:
        logits = runner.infer(x)
        conv = runner.tensor_names()[1]  # after the input's NCHW -> NHWC transpose: the conv (its ReLU fused)
        got = runner.intermediates(x, [conv])[conv].transpose(0, 3, 1, 2)
        assert np.array_equal(runner.infer(x), logits)  # the deployed method is untouched
        with pytest.raises(KeyError, match="no tensor 'conv9'"):
            runner.intermediates(x[:2], ["conv9"])
    with NativeRunner(models.source("pytorch").path, framework="pytorch", spec=models.spec) as native:
        expected = native.intermediates(x, ["relu1"])["relu1"]
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= 1e-5 * float(np.abs(expected).max())
