"""LeNet-5 deployments shared by the mobile tests (converters and runtimes), made once per test session.

Each source model is the zoo's LeNet-5 built by a framework adapter with the canonical random weights of
`tests.frameworks.weights` (the same numbers in every framework), saved in the framework's own format,
with its own logits on the real MNIST test images of `mnist_small`. Conversions of the main environment
run in this process and are cached, so a deployment the converter tests made is the one the runtime
tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.graph import convert_file, converter
from dlcompat.data.batching import to_float
from dlcompat.data.calibration import calibration_images
from dlcompat.data.registry import Dataset, save_npz
from dlcompat.envs.registry import get_env, sync_env
from dlcompat.frameworks.registry import make_adapter
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest
from dlcompat.zoo.registry import build_spec
from tests.frameworks.weights import random_weights

#: calibration images for the full-integer variants (the study's default is 100)
CALIBRATION = 100
WEIGHTS_SEED = 3


@dataclass
class Source:
    framework: str
    path: Path
    logits: np.ndarray


@dataclass
class Deployment:
    path: Path
    facts: dict[str, Any]


@dataclass
class MobileModels:
    root: Path
    data: Dataset
    sources: dict[str, Source] = field(default_factory=dict)
    deployments: dict[tuple[str, str, str], Deployment] = field(default_factory=dict)

    @property
    def spec(self) -> Any:
        return build_spec("lenet5", self.data.input_shape, self.data.num_classes)

    @property
    def x(self) -> np.ndarray:
        return to_float(self.data.test.x)

    @property
    def y(self) -> np.ndarray:
        return self.data.test.y

    @property
    def calibration(self) -> np.ndarray:
        return calibration_images(self.data, CALIBRATION, seed=0)

    def source(self, framework: str) -> Source:
        if framework not in self.sources:
            adapter = make_adapter(framework, threads=1)
            model = adapter.build(self.spec, seed=0)
            adapter.set_weights(model, random_weights(self.spec, WEIGHTS_SEED))
            path = self.root / f"lenet5-{framework}{adapter.native_suffix}"
            adapter.save(model, path)
            self.sources[framework] = Source(framework, path, adapter.predict(model, self.x))
        return self.sources[framework]

    def deploy(self, edge_name: str, variant: str, framework: str) -> Deployment:
        """`edge_name` (a main-environment edge) applied to `framework`'s source model, in this process."""
        key = (edge_name, variant, framework)
        if key not in self.deployments:
            edge = converter(edge_name)
            target = self.root / f"lenet5-{framework}-{edge_name}-{variant}{edge.suffix}"
            extra = {"calibration": self.calibration} if variant in edge.calibrated else {}
            facts = convert_file(edge, self.source(framework).path, target, spec=self.spec, variant=variant,
                                 threads=1, **extra)
            self.deployments[key] = Deployment(target, facts)
        return self.deployments[key]


    def convert_jobs(self, edge_name: str, variants: list[str], source: Path, layout: str) -> dict[str, Deployment]:
        """`edge_name` applied to the file `source` by `convert` jobs (one per variant) in the edge's own toolchain
        environment (built on first use, one worker for all), which draw their calibration images themselves."""
        edge = converter(edge_name)
        if not get_env(edge.env).exists():
            sync_env(edge.env)
        store = ArtifactStore(self.root / f"store-{edge.env}")
        with store.writing(".npz") as tmp:
            save_npz(self.data, tmp)
            data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(self.data.input_shape),
                    "num_classes": self.data.num_classes}
        model = store.put_bytes(source.read_bytes(), "".join(source.suffixes[-1:]))
        out = {}
        with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:
            for variant in variants:
                params: dict[str, Any] = {"cell": {"dataset": "mnist", "model": "lenet5", "framework": "test",
                                                   "seed": 0, "target": edge.target, "variant": variant},
                                          "converter": edge_name, "variant": variant, "threads": 1}
                if variant in edge.calibrated:
                    params["calibration"] = {"images": CALIBRATION, "seed": 0}
                request = JobRequest(kind="convert", env=edge.env, threads=1, timeout_s=600,
                                     artifacts_root=str(store.root), params=params,
                                     inputs={"data": data, "model": {"artifact": model, "input_layout": layout}})
                outcome = executor.submit(request, lambda _e: None).result()
                assert outcome.status == "ok", outcome.error
                out[variant] = Deployment(store.path(outcome.outputs["artifact"]), outcome.outputs)
        return out


_SESSIONS: dict[Path, MobileModels] = {}


def mobile_models(tmp_path_factory: Any, data: Dataset) -> MobileModels:
    """The session's one `MobileModels` (keyed by pytest's base temporary folder)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _SESSIONS:
        _SESSIONS[base] = MobileModels(tmp_path_factory.mktemp("mobile"), data)
    return _SESSIONS[base]
