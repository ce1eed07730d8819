"""Runners for the browser runtimes: ONNX Runtime Web (`ortweb`) and TensorFlow.js (`tfjs`) in headless Chromium.

The session is a page holding the model (`loader.PageLoader`, `loader.PageSession`): `activate` loads it,
`deactivate` ends the browser and the server (a kept browser closes only the job's page). Inputs go to
the page as raw float32 files it fetches, logits come back as base64 float32 bytes. A backend the
browser does not offer (WebGPU without an adapter) raises `Unavailable` with the page's reason, so the
cell is recorded, not failed.

ONNX Runtime Web hands back intermediate tensors (`OrtWebRunner.intermediates`) as ONNX Runtime does: a copy of the
model whose graph outputs include the asked values (`onnxruntime.with_outputs`) is laid out beside the job's
model and loaded in the page as a second session; `infer` and the timings keep the deployed model's. A TF.js graph
model hands back any of its nodes (`TfjsRunner.intermediates`: `GraphModel.execute` with those nodes as its outputs,
on the deployed model itself; names are `model.json`'s node names); a layers model does not.

The page times its own calls with `performance.now()` (`timings`), by the rules of
`metrics.latency`; the evaluate job turns those per-call times into the same statistics as every
other runtime's. `predictor` (one page round trip per call) exists for the protocol, not for figures.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.base import Runner, require_tensors, to_layout
from dlcompat.runtimes.browser.loader import PageLoader, PageSession, web_dir
from dlcompat.runtimes.onnxruntime import onnx_value_names, with_outputs

#: images per page call when inferring a whole split (keeps one call's tensors small on every backend)
INFER_CHUNK = 256
#: input bytes per page call of `infer` (8 MiB: the quick study's whole test split of 28x28 images in one call, 13
#: images of 224x224x3 per call)
INFER_CALL_BYTES = 8 << 20


def npm_versions() -> dict[str, str]:
    """Installed versions of the npm packages the page loads (from their package.json)."""
    modules = web_dir() / "node_modules"
    out = {}
    for name in ("onnxruntime-web", "@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            out[name] = json.loads((modules / name / "package.json").read_text())["version"]
    return out


class BrowserRunner(Runner):
    """A model in a page of headless Chromium. `variant` names the backend (subclasses list theirs)."""

    runtime: ClassVar[str]
    #: variant -> (backend asked of the page, whether it is a GPU backend)
    backends: ClassVar[dict[str, tuple[str, bool]]]
    default_variant: ClassVar[str]
    api: ClassVar[str]
    no_intermediates = ("the page's runtime returns only the model's outputs, and dlcompat serves the deployed "
                        "artifact unchanged")  # ONNX Runtime Web overrides: it loads a model copy with extra outputs

    def __init__(self, path: Path, *, input_layout: str = "NHWC", threads: int = 1, variant: str = "",
                 call_timeout_s: float = 300.0, **options: Any) -> None:
        super().__init__(path, input_layout=input_layout, threads=threads, **options)
        self.variant = variant or self.default_variant
        if self.variant not in self.backends:
            raise ValueError(f"{self.runtime}: unknown variant {self.variant!r}; "
                             f"choose from {', '.join(self.backends)}")
        self.backend, self.gpu = self.backends[self.variant]
        self.call_timeout_s = call_timeout_s

    # ------------------------------------------------------------------ life cycle

    def page_threads(self) -> int:
        """Threads to ask the page's backend for."""
        return self.threads

    def prepare_model(self, folder: Path) -> dict[str, Any]:
        """Lay the artifact out in `folder` (served as /model/); return the page's model spec fields."""
        raise NotImplementedError

    def loader(self) -> PageLoader:
        return PageLoader(self.runtime, self.variant, self.backend, self.gpu, self.page_threads(), self.call_timeout_s,
                          self.prepare_model)

    def release(self, session: PageSession) -> None:
        session.close()

    def reusable(self) -> bool:
        """The page is still there, no call failed and the browser runs (it may have been cut by the watchdog)."""
        page = self.session
        return (page is not None and page.page is not None and not page.failed and page.chromium is not None
                and page.chromium.healthy())

    def _page(self) -> PageSession:
        """The active session, or an empty one (nothing loaded) for the facts of an inactive runner."""
        return self.session or PageSession(self.runtime, self.variant, self.call_timeout_s)

    # ------------------------------------------------------------------ page calls

    def call(self, function: str, *args: Any, what: str = "") -> Any:
        """Call `dlcompat.<function>(...args)` in the page and await it; the browser is killed past the time limit."""
        return self._page().call(function, *args, what=what)

    def _put_input(self, name: str, x: np.ndarray) -> tuple[int, ...]:
        """Write `x` (float32 NHWC) in the artifact's layout as raw little-endian float32 and have the page fetch it."""
        workdir = self._page().workdir
        if workdir is None:
            raise RuntimeError(f"{self.runtime} runner is not active: call activate() first")
        data = to_layout(np.asarray(x, dtype=np.float32), self.input_layout).astype("<f4", copy=False)
        (workdir / "data" / f"{name}.bin").write_bytes(data.tobytes())
        self.call("setInput", name, f"/data/{name}.bin", list(data.shape), what=f"reading input {name}")
        (workdir / "data" / f"{name}.bin").unlink()
        return data.shape

    # ------------------------------------------------------------------ the runner protocol

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The logits of `x`, in page calls of at most `INFER_CALL_BYTES` of input each: every call has the time
        limit, so a large model on a slow backend (TF.js's JavaScript CPU kernels on 224x224 images) gets it per
        slice rather than once for the whole split."""
        per_call = max(1, INFER_CALL_BYTES // max(1, int(np.prod(x.shape[1:])) * 4))
        out = []
        for start in range(0, max(len(x), 1), per_call):  # one call for no images too: the page says what it gives
            piece = x[start:start + per_call]
            self._put_input("infer", piece)
            out.append(_logits(self.call("infer", "infer", INFER_CHUNK, what=f"inferring {len(piece)} images")))
        return np.concatenate(out)

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        """One page round trip per call (CDP included): for the protocol and the output check; figures come
        from `timings`, measured inside the page."""
        self._put_input("predict", x)
        return lambda: _logits(self.call("infer", "predict", len(x), what="one inference"))

    def timings(self, x: np.ndarray, rules: dict[str, Any]) -> dict[str, Any]:
        """Per-call times of inference on `x`, measured in the page with `performance.now()` by `rules`.

        `rules` are `metrics.latency.LatencyMethod`'s fields; the result holds the keyword arguments of
        `metrics.latency.summarize` (nanoseconds). The page measures its clock's tick and, where one call
        is short against it, times several calls per sample (each sample is their time / their count).
        """
        self._put_input("latency", x)
        keys = ("warmup", "warmup_time_s", "min_repeats", "min_time_s", "max_time_s", "ci_level", "max_ci_rel_width")
        out = self.call("time", "latency", {k: rules[k] for k in keys}, what="the latency loop")
        isolated = self._page().facts.get("cross_origin_isolated")
        tick_ns = float(out["clock_tick_ms"]) * 1e6
        return {
            # not rounded to whole ns: the page stopped on its CI of these values, and the widths of samples
            # quantized by its clock can land exactly on max_ci_rel_width, where rounding would flip the verdict
            "samples_ns": np.asarray(out["samples_ms"], dtype=np.float64) * 1e6,
            "first_call_ns": out["first_call_ms"] * 1e6,
            "warmup_calls": int(out["warmup_calls"]),
            "warmup_ns": out["warmup_ms"] * 1e6,
            "elapsed_ns": out["elapsed_ms"] * 1e6,
            "clock": f"performance.now() in the page ({'cross-origin isolated, ' if isolated else ''}"
                     f"{tick_ns / 1e3:.3g} µs ticks measured)",
            "clock_tick_ns": tick_ns,
            "calls_per_sample": int(out["calls_per_sample"]),
        }

    def figures(self) -> list[tuple[str, float, str]]:
        """Figures the page measured itself while loading: (metric, value, unit)."""
        page = self._page()
        f = page.facts
        # model_init_time: ONNX Runtime Web's first InferenceSession.create also fetches and compiles its
        # WebAssembly runtime (TF.js does that in runtime_init_time, apart)
        out = [("browser_start_time", page.browser_start_s, "s"),
               ("model_download_time", f["model_download_ms"] / 1e3, "s"),
               ("model_init_time", f["model_init_ms"] / 1e3, "s"),
               ("model_size_served", float(page.served_model_bytes), "bytes")]
        if f.get("runtime_init_ms") is not None:
            out.append(("runtime_init_time", f["runtime_init_ms"] / 1e3, "s"))
        return out

    def info(self) -> dict[str, Any]:
        page = self._page()
        f = page.facts
        return {
            "runtime": self.runtime,
            "version": f.get("runtime_version", ""),
            "variant": self.variant,
            "backend": f.get("backend", ""),  # what the page reports it runs, not what was asked
            "threads": f.get("threads"),
            "browser": f"Chromium {page.browser_version}" if page.browser_version else "",
            # the job worker's kept browser (a fresh context per job), and whether it ran before this job
            "browser_kept": page.kept,
            "browser_reused": page.browser_reused,
            "user_agent": f.get("user_agent", ""),
            "cross_origin_isolated": f.get("cross_origin_isolated"),
            "gpu": f.get("gpu"),
            "software_gpu": f.get("software_gpu"),
            "api": self.api,
            "bundle": f.get("bundle"),  # ONNX Runtime Web's build for the backend
            "timer": "performance.now()",
            "served_from": "127.0.0.1 (web/node_modules, no CDN)",
            "npm": npm_versions(),
        }


class OrtWebRunner(BrowserRunner):
    """ONNX Runtime Web: wasm on one thread, wasm on several (cross-origin isolated), WebGPU, WebGL."""

    name = "ortweb"
    runtime = "ortweb"
    backends: ClassVar[dict[str, tuple[str, bool]]] = {
        "wasm": ("wasm", False), "wasm-threads": ("wasm", False), "webgpu": ("webgpu", True), "webgl": ("webgl", True),
    }
    default_variant = "wasm"
    api = "onnxruntime-web InferenceSession.run"

    def page_threads(self) -> int:
        if self.variant == "wasm":
            return 1
        if self.variant == "wasm-threads":
            return max(2, self.threads)
        return 1

    def prepare_model(self, folder: Path) -> dict[str, Any]:
        shutil.copyfile(self.path, folder / "model.onnx")
        return {"model": "/model/model.onnx"}

    def activate(self) -> None:
        super().activate()
        #: names asked together -> the page's id of the session of a model copy that outputs them
        self._taps: dict[tuple[str, ...], str] = {}

    def release(self, session: PageSession) -> None:
        self._taps = {}
        super().release(session)

    def tensor_names(self) -> list[str]:
        """The values the graph's nodes compute (ONNX value names, graph order), as for ONNX Runtime."""
        return onnx_value_names(self.path)

    def intermediates(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named values, from a second session in the page, of a copy of the model whose graph outputs
        include them (laid out beside the job's model, built once per set of names): float32, ONNX's layout."""
        key = tuple(names)
        if key not in self._taps:
            require_tensors(self, names, self.tensor_names())
            workdir = self._page().workdir
            if workdir is None:
                raise RuntimeError(f"{self.runtime} runner is not active: call activate() first")
            tap = f"tap{len(self._taps)}"
            (workdir / "model" / f"{tap}.onnx").write_bytes(
                with_outputs(self.path, key))
            self.call("loadExtra", tap, f"/model/{tap}.onnx", what="loading the model copy with extra outputs")
            self._taps[key] = tap
        self._put_input("tap", x)
        out = self.call("inferAll", self._taps[key], "tap", list(key), INFER_CHUNK,
                        what=f"inferring {len(x)} images for {len(key)} tensors")
        return {name: _floats(out[name]) for name in key}


class TfjsRunner(BrowserRunner):
    """TensorFlow.js: the cpu backend (plain JavaScript), wasm (XNNPACK), WebGL."""

    name = "tfjs"
    runtime = "tfjs"
    backends: ClassVar[dict[str, tuple[str, bool]]] = {
        "cpu": ("cpu", False), "wasm": ("wasm", False), "webgl": ("webgl", True),
    }
    default_variant = "cpu"
    api = "TensorFlow.js model.predict + tensor.data()"

    def prepare_model(self, folder: Path) -> dict[str, Any]:
        """The artifact is a zip of a TF.js model folder (model.json + weight shards): unpack it."""
        with zipfile.ZipFile(self.path) as archive:
            for member in archive.infolist():
                target = (folder / member.filename).resolve()
                if not target.is_relative_to(folder.resolve()) or member.is_dir():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
        if not (folder / "model.json").is_file():
            raise ValueError(f"{self.path} holds no model.json: not a TF.js model archive")
        fmt = json.loads((folder / "model.json").read_text()).get("format", "layers-model")
        return {"model": "/model/model.json", "model_kind": "graph" if fmt == "graph-model" else "layers"}

    def tensor_names(self) -> list[str]:
        """The nodes a graph model computes (`model.json`'s names, its order), constants and the input left out."""
        topology = tfjs_topology(self.path)
        if topology is None:
            raise Unavailable(f"{self.name}: {self.path} is a layers model, whose page runtime returns only the "
                              "model's outputs")
        return [node["name"] for node in topology.get("node", []) if node.get("op") not in ("Const", "Placeholder")]

    def intermediates(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named nodes, from the deployed graph model in the page (`GraphModel.execute` with them as outputs):
        float32, TensorFlow's layout (NHWC)."""
        require_tensors(self, names, self.tensor_names())
        self._put_input("tap", x)
        out = self.call("inferNodes", "tap", list(names), INFER_CHUNK,
                        what=f"inferring {len(x)} images for {len(names)} nodes")
        return {name: _floats(out[name]) for name in names}


def tfjs_topology(path: Path) -> dict[str, Any] | None:
    """A TF.js archive's graph (`model.json`'s `modelTopology`), or None for a layers model; `Unavailable` for an
    archive without a readable `model.json`."""
    try:
        with zipfile.ZipFile(path) as archive:
            model = json.loads(archive.read("model.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise Unavailable(f"tfjs: {path} holds no readable model.json ({exc})") from exc
    return model.get("modelTopology") if model.get("format") == "graph-model" else None


def _logits(out: dict[str, Any]) -> np.ndarray:
    """The page's answer (base64 of little-endian float32 bytes, and a shape) as a float32 array."""
    return np.frombuffer(base64.b64decode(out["logits"]), dtype="<f4").reshape(out["shape"]).astype(np.float32)


def _floats(out: dict[str, Any]) -> np.ndarray:
    """One tensor of the page's answer (base64 of little-endian float32 bytes, and its dims) as a float32 array."""
    return np.frombuffer(base64.b64decode(out["data"]), dtype="<f4").reshape(out["dims"]).astype(np.float32)
