"""The browser and the server always end: when a page never answers (the runner's time limit), when a job
fails half-way, and when the process that started them is killed outright (a job killed at its limit)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from dlcompat.runtimes.browser import loader as loader_module
from dlcompat.runtimes.browser.chromium import Chromium, group_alive, sweep_stale_profiles
from dlcompat.runtimes.browser.runner import OrtWebRunner
from dlcompat.runtimes.browser.server import StaticServer

#: a page whose runtime never answers: `load` returns a promise that never settles
HANGING_PAGE = """<!doctype html><script type="module">
window.dlcompat = { load: () => new Promise(() => {}) };
window.dlcompatReady = true;
</script>"""


@pytest.fixture
def hanging_page(tmp_path, monkeypatch):
    folder = tmp_path / "page"
    folder.mkdir()
    (folder / "index.html").write_text(HANGING_PAGE)
    monkeypatch.setattr(loader_module, "page_dir", lambda: folder)
    return folder


@pytest.fixture
def started(monkeypatch):
    """Record each browser (pid, profile) and server (port) the code under test starts."""
    seen: dict[str, list] = {"browsers": [], "ports": []}
    chromium_start, server_start = Chromium.start, StaticServer.start

    def record_chromium(self):
        out = chromium_start(self)
        seen["browsers"].append((self.proc.pid, str(self.profile)))
        return out

    def record_server(self):
        out = server_start(self)
        seen["ports"].append(self.address[1])
        return out

    monkeypatch.setattr(Chromium, "start", record_chromium)
    monkeypatch.setattr(StaticServer, "start", record_server)
    return seen


def group_gone(pgid: int, within_s: float = 10.0) -> bool:
    """No process of the group runs any more (zombies waiting for init to reap them do not count)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def ours(profile: str) -> list[int]:
    """Live processes started with this browser profile (the browser and every child of it)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(profile in part for part in cmdline):
            found.append(proc.info["pid"])
    return found


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_all_ended(seen: dict) -> None:
    assert seen["browsers"] and seen["ports"]
    for pid, profile in seen["browsers"]:
        assert group_gone(pid), f"chromium's process group {pid} is still alive"
        assert ours(profile) == [], f"processes of profile {profile} remain"
        assert not Path(profile).exists()
    for port in seen["ports"]:
        assert port_closed(port), f"port {port} still accepts connections"


def test_a_page_that_never_answers_is_cut_at_the_time_limit(tmp_path, hanging_page, started):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"never loaded")
    runner = OrtWebRunner(model, variant="wasm", call_timeout_s=3)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish loading the model .* within 3 s"):
        runner.activate()
    assert time.monotonic() - start < 60
    assert runner.session is None
    assert_all_ended(started)


def test_a_failing_job_ends_browser_and_server(tmp_path, started, lenet5_onnx):
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm")
    with pytest.raises(RuntimeError, match="input"):
        try:
            runner.activate()
            runner.infer(np.zeros((2, 5, 5, 1), dtype=np.float32))  # wrong image size
        finally:
            runner.deactivate()
    assert_all_ended(started)


_KILLED = """
import json, sys
from pathlib import Path
from dlcompat.runtimes.browser.chromium import Chromium, group_alive, sweep_stale_profiles
from dlcompat.runtimes.browser.server import StaticServer
server = StaticServer({"/": Path(sys.argv[1])}).start()
chromium = Chromium(("--disable-gpu",)).start()
page = chromium.new_page()
page.goto(server.url + "/index.html")
print(json.dumps({"pid": chromium.proc.pid, "profile": str(chromium.profile), "port": server.address[1]}), flush=True)
page.evaluate("() => window.dlcompat.load()")  # never returns: the job hangs until it is killed
"""


def test_a_killed_job_takes_its_browser_and_server_with_it(hanging_page):
    """SIGKILL, as the executor does at a job's time limit: no `finally` runs, the kernel must end the browser."""
    job = subprocess.Popen([sys.executable, "-c", _KILLED, str(hanging_page)], stdout=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        line = job.stdout.readline()
        assert line, "the job did not start its browser"
        facts = json.loads(line)
        assert ours(facts["profile"]) and not port_closed(facts["port"])
        time.sleep(0.5)
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=10)
        assert group_gone(facts["pid"]), "chromium outlived the job that started it"
        deadline = time.monotonic() + 10
        while ours(facts["profile"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ours(facts["profile"]) == []
        assert port_closed(facts["port"])
        # its profile folder stays behind (no `finally` ran); the next browser's start sweeps it away
        assert Path(facts["profile"]).exists()
        assert sweep_stale_profiles() >= 1 and not Path(facts["profile"]).exists()
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=10)
