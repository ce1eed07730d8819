"""A job worker keeps a CPU browser and a GPU browser side by side, and asks each for a missing backend once.

Real ORT-web runners on a real LeNet-5 (PyTorch, one epoch on real MNIST, torch.onnx) in Debian's Chromium,
with DLCOMPAT_JOB_WORKER=1 as the study's workers have it. This machine has no WebGPU adapter, which the page
reports with scope "browser": the second WebGPU job in the same browser is answered from that, without a page.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.browser import chromium as chromium_module
from dlcompat.runtimes.browser.chromium import close_kept_browsers, group_alive
from dlcompat.runtimes.browser.runner import OrtWebRunner


@pytest.fixture
def keeping(monkeypatch):
    monkeypatch.setenv("DLCOMPAT_JOB_WORKER", "1")
    yield
    close_kept_browsers()


def _wasm_pid(lenet5_onnx, x: np.ndarray) -> tuple[int, bool]:
    with OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm") as runner:
        np.testing.assert_allclose(runner.infer(x), lenet5_onnx["logits"][: len(x)], rtol=1e-4, atol=1e-4)
        return runner.session.chromium.pid, runner.info()["browser_reused"]


def _webgpu_reason(lenet5_onnx) -> str:
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="webgpu")
    with pytest.raises(Unavailable) as caught, runner:
        pass
    return str(caught.value)


def test_cpu_and_gpu_jobs_alternate_without_restarting_either_browser(keeping, lenet5_onnx, mnist_test):
    x = mnist_test[0][:20]
    cpu_pid, _ = _wasm_pid(lenet5_onnx, x)
    first = _webgpu_reason(lenet5_onnx)
    assert "no WebGPU adapter" in first
    gpu_browser = next(b for args, b in chromium_module._KEPT.items() if "--disable-gpu" not in args)
    assert gpu_browser.lacks == {("ortweb", "webgpu"): first.split(": ", 1)[1]}

    pages_before = sum(len(context.pages) for context in gpu_browser.browser.contexts)
    assert _webgpu_reason(lenet5_onnx) == first  # the same sentence, answered without a page
    assert sum(len(context.pages) for context in gpu_browser.browser.contexts) == pages_before

    cpu_pid_again, reused = _wasm_pid(lenet5_onnx, x)
    assert cpu_pid_again == cpu_pid and reused is True
    assert len(chromium_module._KEPT) == 2 and len(chromium_module._DRIVER) == 1
    pids = [b.pid for b in chromium_module._KEPT.values()]
    close_kept_browsers()
    assert not chromium_module._KEPT and not chromium_module._DRIVER
    assert not any(group_alive(pid) for pid in pids)
