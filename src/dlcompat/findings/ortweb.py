"""ONNX Runtime Web (wasm, one thread) as a conformance route: one headless Chromium page serves every case.

`OrtWebServer` answers `call(model_path, inputs)` as `routes.RouteServer` does, so the conformance run and the reducer
drive it the same way; instead of a process in a toolchain environment it holds one page of the browser runner's
(`runtimes/browser`: its static server, loopback only, its Chromium, its page and the runtime files from
`web/node_modules`, never a CDN). The page is opened once; each case is one `page.evaluate`: the page fetches the
model and its inputs (raw little-endian bytes of any numeric type), creates an `InferenceSession` on the wasm
execution provider (graph optimisation "all", as a site deploys it), runs it, returns every output's bytes (base64)
with its type and dims, and releases the session. A case that runs past the time limit kills the browser (the
runner's watchdog); the next case starts a fresh one. Sequence-typed inputs have no JavaScript tensor type: such a
call is answered with an error that says so.

The page's own `dlcompat.js` is not changed: the code here is evaluated in the page beside it.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .routes import ROUTE_TIMEOUT, Answer
from .tools import Tool

#: the route's name; its versions are the npm package's and the browser's
NAME = "onnxruntime-web"
TOOL = Tool(NAME, "main", "", ())
#: ONNX Runtime Web's tensor type names for NumPy's dtypes (strings are left out of the conformance run)
TYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
         "int16": "int16", "int8": "int8", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
         "uint64": "uint64", "bool": "bool"}
DTYPES = {v: k for k, v in TYPES.items()}

_INIT = """async () => {
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = "/ort/"; ort.env.wasm.proxy = false; ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  window.dlcompatConformance = ort;
  return ort.env.versions ? (ort.env.versions.web || ort.env.versions.common || "") : "";
}"""

_RUN = """async ({model, inputs}) => {
  const ort = window.dlcompatConformance;
  const ARRAYS = {float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array,
    int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, uint16: Uint16Array,
    uint32: Uint32Array, uint64: BigUint64Array, bool: Uint8Array};
  const get = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const b64 = (bytes) => {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  let session;
  try {
    session = await ort.InferenceSession.create(await get(model),
      {executionProviders: ["wasm"], graphOptimizationLevel: "all", intraOpNumThreads: 1});
    const feeds = {};
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i], bytes = await get(x.url), Arr = ARRAYS[x.type];
      const data = new Arr(bytes.buffer, bytes.byteOffset, bytes.byteLength / Arr.BYTES_PER_ELEMENT);
      feeds[session.inputNames[i]] = new ort.Tensor(x.type, data, x.dims);
    }
    const out = await session.run(feeds);
    return {outputs: session.outputNames.map((n) => {
      const t = out[n], d = t.data;
      if (typeof d[0] === "string") return {type: "string", dims: Array.from(t.dims), data: ""};
      return {type: t.type, dims: Array.from(t.dims), data: b64(new Uint8Array(d.buffer, d.byteOffset, d.byteLength))};
    })};
  } catch (err) {
    return {error: String((err && err.message) || err)};
  } finally {
    if (session) await session.release();
  }
}"""


class OrtWebServer:
    """ONNX Runtime Web's wasm backend in one page of headless Chromium; `call` runs one model."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.tool, self.timeout_s = TOOL, timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="dlcompat-route-ortweb-"))
        self.server: Any = None
        self.chromium: Any = None
        self.page: Any = None
        self.version = ""
        self.browser = ""
        self.calls = 0

    def _start(self) -> None:
        from dlcompat.runtimes.browser.chromium import NO_GPU_ARGS, Chromium
        from dlcompat.runtimes.browser.loader import page_dir, runtime_routes
        from dlcompat.runtimes.browser.server import StaticServer

        if self.server is None:
            self.server = StaticServer({"/": page_dir(), **runtime_routes(), "/case": self.workdir}).start()
        self.chromium = Chromium(NO_GPU_ARGS)
        self.chromium.start()
        self.page = self.chromium.new_page()
        self.page.set_default_timeout(self.timeout_s * 1000)
        self.page.goto(f"{self.server.url}/index.html", wait_until="load")
        self.version = str(self.page.evaluate(_INIT))
        self.browser = f"Chromium {self.chromium.version}"

    def _stop_browser(self) -> None:
        if self.chromium is not None:
            self.chromium.close()
        self.chromium = self.page = None

    def call(self, model_path: Path, inputs: Sequence[Any]) -> Answer:
        if any(isinstance(x, list | tuple) for x in inputs):
            return Answer(None, "TypeError: ONNX Runtime Web's JavaScript API has no sequence-typed input")
        if any(np.asarray(x).dtype.name not in TYPES for x in inputs):
            return Answer(None, "TypeError: an input type ONNX Runtime Web's tensors do not take here")
        if self.chromium is None or not self.chromium.healthy():
            self._stop_browser()
            self._start()
        self.calls += 1
        name = f"c{self.calls}"
        shutil.copyfile(model_path, self.workdir / f"{name}.onnx")
        feeds = []
        for i, x in enumerate(np.asarray(v) for v in inputs):
            (self.workdir / f"{name}-{i}.bin").write_bytes(np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<"))
                                                           .tobytes())
            feeds.append({"url": f"/case/{name}-{i}.bin", "type": TYPES[x.dtype.name], "dims": list(x.shape)})
        try:
            with self.chromium.deadline(self.timeout_s):
                answer = self.page.evaluate(_RUN, {"model": f"/case/{name}.onnx", "inputs": feeds})
        except Exception as exc:  # the watchdog killed the browser, or the page crashed
            self._stop_browser()
            return Answer(None, f"{ROUTE_TIMEOUT}: ONNX Runtime Web did not answer within {self.timeout_s:g} s "
                                f"({str(exc).splitlines()[0][:160]})")
        finally:
            for path in self.workdir.glob(f"{name}*"):
                path.unlink(missing_ok=True)
        if "error" in answer:
            return Answer(None, f"Error: {answer['error']}")
        return Answer([_array(out) for out in answer["outputs"]])

    def versions(self) -> dict[str, str]:
        """The npm package's version and the browser's, once a call has started the page."""
        return {NAME: self.version, "chromium": self.browser.removeprefix("Chromium ")}

    def close(self) -> None:
        self._stop_browser()
        if self.server is not None:
            self.server.close()
            self.server = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OrtWebServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _array(out: dict[str, Any]) -> np.ndarray:
    if out["type"] == "string":
        return np.zeros(out["dims"], dtype=object)
    dtype = np.dtype(DTYPES[out["type"]]).newbyteorder("<")
    data = np.frombuffer(base64.b64decode(out["data"]), dtype=dtype).reshape(out["dims"])
    return data.astype(dtype.newbyteorder("="))
