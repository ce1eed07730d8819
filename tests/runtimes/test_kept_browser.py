"""A job worker keeps its browser and its static server for all its jobs (a fresh page per job, the runtime files
from the browser's cache after the first); a page error ends only the job's page, a browser cut by the watchdog is
ended.

Runs the real ORT-web runner on a real LeNet-5 (PyTorch, one epoch on real MNIST, torch.onnx) in
Debian's Chromium, with DLCOMPAT_JOB_WORKER=1 as the study's workers have it.
"""

from __future__ import annotations

import time

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


def _run(lenet5_onnx, x: np.ndarray, served: list[int] | None = None) -> tuple[int, bool, np.ndarray]:
    with OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm") as runner:
        logits = runner.infer(x)
        assert runner.session.chromium is not None
        if served is not None:  # bytes of ONNX Runtime Web's files the server sent for this job's model load
            served.append(runner.session.server.bytes_served("/ort"))
        return runner.session.chromium.pid, runner.info()["browser_reused"], logits


def test_two_jobs_share_one_browser_and_compute_the_same(keeping, lenet5_onnx, mnist_test):
    x = mnist_test[0][:50]
    served: list[int] = []
    pid_1, reused_1, first = _run(lenet5_onnx, x, served)
    pid_2, reused_2, second = _run(lenet5_onnx, x, served)
    assert (reused_1, reused_2) == (False, True)
    assert served[0] > 1_000_000 and served[1] == 0  # the second page had the runtime from the browser's cache
    assert pid_1 == pid_2 and group_alive(pid_1)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, lenet5_onnx["logits"][:50], rtol=1e-4, atol=1e-4)
    close_kept_browsers()
    assert not chromium_module._KEPT


def test_a_failed_call_closes_its_page_and_the_next_job_reuses_the_browser(keeping, lenet5_onnx, mnist_test):
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm")
    with pytest.raises(RuntimeError, match="input"), runner:
        failed_pid = runner.session.chromium.pid
        failed_page = runner.session.page
        runner.infer(np.zeros((2, 5, 5, 1), dtype=np.float32))  # wrong image size: the page raises
    assert failed_page.is_closed()  # the page's error died with its page
    pid, reused, logits = _run(lenet5_onnx, mnist_test[0][:10])
    assert pid == failed_pid and reused is True
    np.testing.assert_allclose(logits, lenet5_onnx["logits"][:10], rtol=1e-4, atol=1e-4)


def test_a_browser_cut_by_the_watchdog_is_ended_and_the_next_job_gets_a_fresh_one(keeping, lenet5_onnx, mnist_test):
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm")
    with pytest.raises(TimeoutError, match="did not finish"), runner:
        killed_pid = runner.session.chromium.pid
        runner.session.call_timeout_s = 0.001  # no page call answers within a millisecond: the watchdog kills it
        runner.infer(mnist_test[0][:10])
    assert _ended(killed_pid), "the killed browser is still running"
    pid, reused, _ = _run(lenet5_onnx, mnist_test[0][:10])
    assert pid != killed_pid and reused is False


def _ended(pgid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_backend_the_browser_lacks_is_answered_without_a_page_and_the_browser_is_kept(keeping, lenet5_onnx,
                                                                                         mnist_test):
    pid, _, _ = _run(lenet5_onnx, mnist_test[0][:10])
    kept = next(browser for browser in chromium_module._KEPT.values() if browser.pid == pid)
    kept.lacks[("ortweb", "wasm")] = "no such backend (test)"  # as a page of an earlier job answered
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm")
    with pytest.raises(Unavailable, match=r"no such backend \(test\)"), runner:
        pass
    assert group_alive(pid) and chromium_module._KEPT  # no page was opened, and the browser stays for later jobs
    kept.lacks.clear()
    again, reused, _ = _run(lenet5_onnx, mnist_test[0][:10])
    assert (again, reused) == (pid, True)
