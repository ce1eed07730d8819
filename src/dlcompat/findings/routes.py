"""A tool's `run(model_path, inputs)` (`findings/tools.py`) served by a long-lived process in its toolchain
environment, so that a conformance run or a reduction pays the tool's import once, not once per model.

The server reads one JSON request a line on standard input (`model`, `inputs`: an `.npz` of the inputs in order,
`out`: where to write the outputs' `.npz`) and answers one JSON line on a duplicate of its standard output (the
tool's own prints go to standard error, kept in a log file). Arrays travel as `.npz` files read with
`allow_pickle=False` (`pack`, `unpack`: a sequence-typed value, a list of arrays, travels as its items and its
length). A request that runs past its time limit, or a process that dies (a tool that crashes the
interpreter), is answered with an error and the server is started again for the next request.
"""

from __future__ import annotations

import inspect
import json
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dlcompat.envs.registry import get_env

from .tools import Tool


def pack(values: Sequence[Any]) -> dict[str, Any]:
    """`.npz` entries for values in order: `t<i>` an array; `n<i>` the length and `s<i>_<j>` the items of a list."""
    out: dict[str, Any] = {}
    for i, value in enumerate(values):
        if isinstance(value, (list, tuple)):  # the server may run a Python before 3.10
            out[f"n{i}"] = np.asarray(len(value))
            out.update({f"s{i}_{j}": np.asarray(item) for j, item in enumerate(value)})
        else:
            out[f"t{i}"] = np.asarray(value)
    return out


def unpack(saved: Mapping[str, Any]) -> list[Any]:
    """The values `pack` wrote, in order."""
    count = sum(k[0] in "tn" for k in saved)
    return [saved[f"t{i}"] if f"t{i}" in saved else [saved[f"s{i}_{j}"] for j in range(int(saved[f"n{i}"]))]
            for i in range(count)]


_LOOP = '''
import json, os, sys
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
for line in sys.stdin:
    request = json.loads(line)
    try:
        with np.load(request["inputs"], allow_pickle=False) as f:
            inputs = unpack(f)
        outputs = run(request["model"], inputs)
        np.savez(request["out"], **pack([o if isinstance(o, (list, tuple)) else np.asarray(o) for o in outputs]))
        message = {"ok": True}
    except (Exception, SystemExit) as exc:
        message = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:4000]}
    reply.write(json.dumps(message) + "\\n")
    reply.flush()
'''

#: how an answer cut by the route's own time limit begins: not the tool's error, so no cause (the machine may just
#: have been busy); the conformance run records such a case as "timeout", unjudged
ROUTE_TIMEOUT = "RouteTimeout"
#: the longest one request may take (onnx2tf converts with TensorFlow: seconds to tens of seconds)
REQUEST_TIMEOUT_S = 300.0


@dataclass
class Answer:
    outputs: list[Any] | None  # an array per output, or a list of arrays for a sequence-typed one
    error: str = ""


class Route(Protocol):
    """What the conformance run and the reducer drive: a tool (`RouteServer`, or a browser's page) that runs a model."""

    tool: Tool

    def call(self, model_path: Path, inputs: Sequence[Any]) -> Answer: ...


class RouteServer:
    """`tool` served in its environment; `call` runs one model."""

    def __init__(self, tool: Tool, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.tool, self.timeout_s = tool, timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dlcompat-route-{tool.name}-"))
        self.script = self.workdir / "serve.py"
        codec = "from typing import Any\nfrom collections.abc import Mapping, Sequence\n" + "".join(
            inspect.getsource(f) for f in (pack, unpack))
        self.script.write_text("from __future__ import annotations\nimport numpy as np\n" + codec + tool.source + _LOOP)
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

    def call(self, model_path: Path, inputs: Sequence[Any]) -> Answer:
        if self.process is None or self.process.poll() is not None:
            self._start()
        assert self.process is not None and self.process.stdin is not None
        self.calls += 1
        feed, out = self.workdir / f"in{self.calls}.npz", self.workdir / f"out{self.calls}.npz"
        np.savez(feed, **pack(inputs))
        try:
            self.process.stdin.write(json.dumps({"model": str(model_path), "inputs": str(feed),
                                                 "out": str(out)}) + "\n")
            self.process.stdin.flush()
            line = self.lines.get(timeout=self.timeout_s)
        except queue.Empty:
            self._stop()
            return Answer(None, f"{ROUTE_TIMEOUT}: {self.tool.name} ran past {self.timeout_s:.0f} s")
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
            outputs = unpack(saved)
        out.unlink(missing_ok=True)
        return Answer(outputs)

    def close(self) -> None:
        """Stop the tool's process and remove its folder (script, log, exchanged arrays): a closed server is done."""
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._stop()
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RouteServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
