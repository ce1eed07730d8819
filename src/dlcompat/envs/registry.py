"""Toolchain environments: each is a Python version plus a pinned requirements file under `envs/`.

Jobs run in the environment of their framework, converter or runtime, because toolchains pin
conflicting versions (Theano needs numpy 1.23, onnx2tf 2.x needs Python 3.12, tensorflowjs its own
protobuf). `main` is the environment the driver itself runs in (`make setup` builds it as `.venv`);
every other environment is created on demand under the environments root, in a folder named by the
hash of its requirements, so changing a pin builds a fresh environment and never mutates an old one.
Workers of other environments import dlcompat's NumPy-only core from the source tree (PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from dlcompat.errors import FrameworkUnavailableError
from dlcompat.registry import Registry
from dlcompat.versions import distribution

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/dlcompat
SOURCE_ROOT = PACKAGE_ROOT.parent  # src/ (put on PYTHONPATH for workers)
PROJECT_ROOT = SOURCE_ROOT.parent
REQUIREMENTS_DIR = PROJECT_ROOT / "envs"


def envs_root() -> Path:
    return Path(os.environ.get("DLCOMPAT_ENVS_DIR", Path.home() / ".cache" / "dlcompat" / "envs"))


@dataclass(frozen=True)
class ToolchainEnv:
    name: str
    python: str  # "3.11"
    requirements: str  # file name under envs/
    description: str
    variables: dict[str, str] = field(default_factory=dict)  # extra environment variables for its workers
    #: file name under envs/ of pins installed afterwards with `pip install --no-deps` (declared pins that conflict)
    no_deps: str = ""

    @property
    def requirements_path(self) -> Path:
        return REQUIREMENTS_DIR / self.requirements

    @property
    def no_deps_path(self) -> Path | None:
        return REQUIREMENTS_DIR / self.no_deps if self.no_deps else None

    def lock_hash(self) -> str:
        """Hash of what defines the environment: its Python version and its pinned requirements."""
        text = self.requirements_path.read_text() if self.requirements_path.exists() else ""
        if self.no_deps_path is not None:  # only where there is one, so other environments keep their hash
            no_deps = self.no_deps_path.read_text() if self.no_deps_path.exists() else ""
            text += f"\n--no-deps\n{no_deps}"
        return hashlib.sha256(f"python{self.python}\n{text}".encode()).hexdigest()

    @property
    def is_driver(self) -> bool:
        return self.name == "main"

    def location(self) -> Path:
        if self.is_driver:
            return Path(sys.prefix)
        return envs_root() / f"{self.name}-{self.lock_hash()[:12]}"

    def interpreter(self) -> Path:
        if self.is_driver:
            return Path(sys.executable)
        return self.location() / "bin" / "python"

    def exists(self) -> bool:
        return self.interpreter().exists() and (self.is_driver or (self.location() / ".dlcompat-synced").exists())

    def worker_environ(self, threads: int) -> dict[str, str]:
        """Environment variables for a worker: thread budget, dlcompat's source on the path, extras."""
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            env[var] = str(threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        # a long-lived job worker: it keeps one browser for all its jobs (runtimes/browser/chromium.py) and the
        # model an evaluate job loaded for the transfer job that follows it (runtimes/parking.py)
        env["DLCOMPAT_JOB_WORKER"] = "1"
        # XLA compiles each jitted step for seconds; a persistent cache makes every later worker's free
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(envs_root().parent / "jax-cache"))
        env.update(self.variables)
        return env


ENVS: Registry[ToolchainEnv] = Registry("toolchain environment")
register_env = ENVS.register


register_env(ToolchainEnv("main", "3.11", "main.txt",
                         "the driver; PyTorch (CPU), TensorFlow/Keras, JAX/Flax, PyTensor, ONNX, ONNX Runtime"))
register_env(ToolchainEnv("onnx2torch", "3.11", "onnx2torch.txt",
                          "onnx2torch with torch 2.14.1 + torchvision 0.29.1 (torchvision fails beside torch 2.13)"))
register_env(ToolchainEnv("onnx2tf", "3.12", "onnx2tf.txt",
                          "onnx2tf 2.x with tensorflow-cpu 2.21 (onnx2tf 2.x needs Python >= 3.12)"))
register_env(ToolchainEnv("litert-torch", "3.11", "litert-torch.txt",
                          "litert-torch 0.10 (PyTorch -> LiteRT), torch 2.13 CPU; its pins would downgrade pydantic"))
register_env(ToolchainEnv("tfjs", "3.11", "tfjs.txt",
                          "the TensorFlow.js converter, tensorflowjs 4.22 (TensorFlow 2.19, numpy 2.1, protobuf 6.31)",
                          no_deps="tfjs-nodeps.txt"))
register_env(ToolchainEnv("theano", "3.11", "theano.txt", "the original Theano 1.0.5 (numpy 1.23.5, scipy < 1.12)",
                          variables={"THEANO_FLAGS": "floatX=float32,blas.ldflags=-lopenblas"}))


def env_names() -> list[str]:
    return ENVS.names()


def get_env(name: str) -> ToolchainEnv:
    return ENVS.get(name)


def python_candidates(version: str) -> list[str]:
    """Where an interpreter of `version` may be, most likely first (none of them checked yet).

    `pythonX.Y` on PATH comes first, but on PATH it may be a pyenv shim for a version that is installed
    yet not selected (the shim then exits 127), so pyenv's own install folders, `uv python find` and
    the usual system prefixes follow.
    """
    candidates: list[str] = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)]
    uv = shutil.which("uv")
    if uv:
        done = subprocess.run([uv, "python", "find", version], capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(done.stdout.strip())
    candidates += [f"{prefix}/bin/python{version}" for prefix in ("/usr/local", "/usr")]
    return list(dict.fromkeys(candidates))


def interpreter_version(path: str) -> str | None:
    """The `X.Y` that the interpreter at `path` reports when run, or None where it does not run."""
    try:
        done = subprocess.run([path, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find_python(version: str) -> str:
    """An interpreter of `version` that runs and says it is that version (a broken shim is passed over)."""
    for candidate in python_candidates(version):
        if interpreter_version(candidate) == version:
            return candidate
    raise FrameworkUnavailableError(
        f"no working Python {version} was found (tried pythonX.Y on PATH, pyenv's versions folder, `uv python find`"
        f" and /usr): install it, e.g. `pyenv install {version}` or `apt-get install python{version}`"
        f" and `python{version}-venv`, to build that environment"
    )


def sync_env(name: str, log: Path | None = None, force: bool = False) -> Path:
    """Create (or complete) environment `name` from its pinned requirements; return its interpreter.

    An environment already built from the same requirements (its folder is named by their hash) is left
    as it is unless `force`.
    """
    env = get_env(name)
    if env.exists() and not force:
        return env.interpreter()
    pip_log = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        if env.is_driver:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(env.requirements_path)],
                           check=True, stdout=pip_log, stderr=pip_log)
            return env.interpreter()
        location = env.location()
        if not env.interpreter().exists():
            location.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([find_python(env.python), "-m", "venv", str(location)], check=True,
                           stdout=pip_log, stderr=pip_log)
        subprocess.run([str(env.interpreter()), "-m", "pip", "install", "-q", "-r", str(env.requirements_path)],
                       check=True, stdout=pip_log, stderr=pip_log)
        if env.no_deps_path is not None:
            subprocess.run([str(env.interpreter()), "-m", "pip", "install", "-q", "--no-deps", "-r",
                            str(env.no_deps_path)], check=True, stdout=pip_log, stderr=pip_log)
        (location / ".dlcompat-synced").write_text(env.lock_hash())
        return env.interpreter()
    except subprocess.CalledProcessError as exc:
        raise FrameworkUnavailableError(
            f"building environment {name!r} failed ({exc}): see {log or 'pip output'} and check the pins in "
            f"{env.requirements_path}"
        ) from exc
    finally:
        if log:
            pip_log.close()  # type: ignore[union-attr]


#: environments built at once: pip's installs are mostly unpacking, so a third overlaps two on 2 cores
PARALLEL_BUILDS = 3


def sync_envs(names: list[str], log: Path | None = None, say: Callable[[str], None] = lambda _m: None,
              heartbeat_s: float = 30.0) -> dict[str, str]:
    """Build every environment of `names` that is not built yet, `PARALLEL_BUILDS` at a time, saying what
    it does: one line as the builds start, one as each ends (time and size on disk), and which are still
    building every `heartbeat_s`. Returns {name: error} for those that failed (the rest are built)."""
    missing = [n for n in dict.fromkeys(names) if not get_env(n).exists()]
    if not missing:
        return {}
    say(f"building toolchain environments {', '.join(missing)} ({PARALLEL_BUILDS} at a time; once, several "
        f"minutes; pip's log: {log or 'not kept'})")
    failed: dict[str, str] = {}
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS, thread_name_prefix="dlcompat-env") as pool:
        running = {pool.submit(sync_env, name, log): name for name in missing}
        while running:
            done, _ = wait(list(running), timeout=heartbeat_s, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    future.result()
                except FrameworkUnavailableError as exc:
                    failed[name] = str(exc)
                    say(f"  {name}: failed ({exc})")
                    continue
                size = _folder_bytes(get_env(name).location()) / 1e9
                say(f"  {name}: built in {time.monotonic() - start:.0f} s ({size:.1f} GB)")
            if running and not done:
                busy = sorted(name for future, name in running.items() if future.running())
                queued = sorted(name for future, name in running.items() if not future.running())
                then = f"; then {', '.join(queued)}" if queued else ""
                say(f"  still building {', '.join(busy)}{then} ({time.monotonic() - start:.0f} s)")
    return failed


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def probe_modules(name: str, modules: list[str]) -> dict[str, str | None]:
    """Version of each module as installed in environment `name` (None where it is missing).

    In the driver's own environment this reads package metadata without importing anything; elsewhere
    it asks the environment's interpreter, which costs one short-lived process.
    """
    env = get_env(name)
    if env.is_driver:
        return {m: _installed_version(m) for m in modules}
    if not env.exists():
        return dict.fromkeys(modules)
    code = (
        "import json,sys\nfrom importlib import metadata, util\nout={}\n"
        "for m in sys.argv[1:]:\n"
        "    spec=util.find_spec(m)\n"
        "    if spec is None: out[m]=None; continue\n"
        "    try: out[m]=metadata.version(m)\n"
        "    except metadata.PackageNotFoundError: out[m]='installed'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(env.interpreter()), "-c", code, *modules], capture_output=True, text=True,
                          timeout=120, env=env.worker_environ(1))
    return json.loads(done.stdout) if done.returncode == 0 else dict.fromkeys(modules)


def _installed_version(module: str) -> str | None:
    from importlib import metadata, util

    if util.find_spec(module) is None:
        return None
    try:
        return metadata.version(distribution(module))
    except metadata.PackageNotFoundError:
        return "installed"
