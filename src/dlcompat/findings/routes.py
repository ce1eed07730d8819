"""A tool's `run(model_path, inputs)` (`findings/tools.py`) served by a long-lived process in its toolchain
environment, so that a conformance run or a reduction pays the tool's import once, not once per model.

The server reads one JSON request a line on standard input (`model`, `inputs`: an `.npz` of the inputs in order,
`out`: where to write the outputs' `.npz`) and answers one JSON line on a duplicate of its standard output (the
tool's own prints go to standard error, kept in a log file). Arrays travel as `.npz` files read with
`allow_pickle=False`. A request that runs past its time limit, or a process that dies (a tool that crashes the
interpreter), is answered with an error and the server is started again for the next request.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcompat.envs.registry import get_env

from .tools import Tool

_LOOP = '''
import json, os, sys
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
for line in sys.stdin:
    request = json.loads(line)
    try:
        with np.load(request["inputs"], allow_pickle=False) as f:
            inputs = [f[f"arr_{i}"] for i in range(len(f.files))]
        outputs = run(request["model"], inputs)
        np.savez(request["out"], *[np.asarray(o) for o in outputs])
        message = {"ok": True}
    except (Exception, SystemExit) as exc:
        message = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:4000]}
    reply.write(json.dumps(message) + "\\n")
    reply.flush()
'''

#: the longest one request may take (onnx2tf converts with TensorFlow: seconds to tens of seconds)
REQUEST_TIMEOUT_S = 300.0


@dataclass
class Answer:
    outputs: list[np.ndarray] | None
    error: str = ""


class RouteServer:
    """`tool` served in its environment; `call` runs one model."""

    def __init__(self, tool: Tool, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.tool, self.timeout_s = tool, timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dlcompat-route-{tool.name}-"))
        self.script = self.workdir / "serve.py"
        self.script.write_text("import numpy as np\n" + tool.source + _LOOP)
        self.log = self.workdir / "server.log"
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.calls = 0

    def _start(self) -> None:
        env = get_env(self.tool.env)
        environ = env.worker_environ(1)
        environ.pop("DLCOMPAT_JOB_WORKER", None)
        self.process = subprocess.Popen(
            [str(env.interpreter()), str(self.script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log.open("a"), text=True, env=environ, cwd=self.workdir)
        self.lines = queue.Queue()
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout] + [self.lines.put(None)],
                         daemon=True).start()

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def call(self, model_path: Path, inputs: Sequence[np.ndarray]) -> Answer:
        if self.process is None or self.process.poll() is not None:
            self._start()
        assert self.process is not None and self.process.stdin is not None
        self.calls += 1
        feed, out = self.workdir / f"in{self.calls}.npz", self.workdir / f"out{self.calls}.npz"
        np.savez(feed, *[np.asarray(x) for x in inputs])
        try:
            self.process.stdin.write(json.dumps({"model": str(model_path), "inputs": str(feed),
                                                 "out": str(out)}) + "\n")
            self.process.stdin.flush()
            line = self.lines.get(timeout=self.timeout_s)
        except queue.Empty:
            self._stop()
            return Answer(None, f"TimeoutError: {self.tool.name} ran past {self.timeout_s:.0f} s")
        except (BrokenPipeError, OSError):
            line = None
        finally:
            feed.unlink(missing_ok=True)
        if line is None:  # the process died
            code = self.process.wait() if self.process else None
            self.process = None
            return Answer(None, f"ProcessDied: the {self.tool.name} process exited with code {code}")
        message = json.loads(line)
        if not message["ok"]:
            return Answer(None, message["error"])
        with np.load(out, allow_pickle=False) as saved:
            outputs = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        out.unlink(missing_ok=True)
        return Answer(outputs)

    def close(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._stop()
        self.process = None

    def __enter__(self) -> RouteServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
