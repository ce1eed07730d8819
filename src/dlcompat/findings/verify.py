"""Does a reproducer reproduce in a clean environment, and is the problem still in the tool's newest release?

For each reproducer folder (`findings/reproducer.py`): a fresh virtual environment of the Python its
`.python-version` names (3.11 without one; interpreters found by `envs.registry.find_python`), its
`requirements.txt` installed by pip (pip's download cache may serve it), then `repro.py` run there: exit 1 is
"reproduces", 0 "does not", anything else "cannot tell". Reproducers with the same Python and the same
requirements share one environment within a call (same pins, same packages). Then the newest release of the tool
(`pip index versions`) replaces the tool's pin in a second environment, and the outcome there is recorded as
"still present in X.Y" or "fixed in X.Y". The outcome is written beside the reproducer as `verified.json`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcompat.envs.registry import find_python
from dlcompat.errors import FrameworkUnavailableError, UserError

from .reproducer import DEFAULT_PYTHON, read_problem

#: the longest a repro.py may run (a conversion with TensorFlow takes tens of seconds on a shared CPU)
REPRO_TIMEOUT_S = 600
PIP_TIMEOUT_S = 3600
VERIFIED = "verified.json"
#: written into an environment once its pins are installed: a kept one (`--venvs`) is reused by a later call
BUILT = ".dlcompat-verify-built"


@dataclass
class Outcome:
    """One run of a repro.py: exit code 1 reproduces, 0 does not, anything else cannot tell."""

    code: int
    output: str
    seconds: float

    @property
    def verdict(self) -> str:
        return {1: "reproduces", 0: "does not reproduce"}.get(self.code, "cannot tell")


@dataclass
class Verification:
    folder: str
    python: str
    outcome: Outcome | None = None
    newest: str = ""  # "still present in X.Y", "fixed in X.Y", or why it could not be checked
    notes: list[str] = field(default_factory=list)

    @property
    def reproduces(self) -> bool:
        return self.outcome is not None and self.outcome.code == 1

    def line(self) -> str:
        verdict = self.outcome.verdict if self.outcome else "not run"
        tail = f"; {self.newest}" if self.newest else ""
        return f"{Path(self.folder).name}: {verdict} in a fresh Python {self.python} environment{tail}"


def run_reproducer(folder: Path, python: str | Path, timeout_s: float = REPRO_TIMEOUT_S) -> Outcome:
    """Run `folder`/repro.py with the interpreter `python`, in the folder."""
    start = time.monotonic()
    try:
        done = subprocess.run([str(python), "repro.py"], cwd=folder, capture_output=True, text=True,
                              timeout=timeout_s, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2",
                                                      "HOME": str(Path.home())})
    except subprocess.TimeoutExpired:
        return Outcome(-1, f"repro.py ran past {timeout_s:.0f} s", time.monotonic() - start)
    output = (done.stdout + done.stderr)[-4000:]
    return Outcome(done.returncode, output, time.monotonic() - start)


def python_of(folder: Path) -> str:
    marker = folder / ".python-version"
    return marker.read_text().strip() if marker.exists() else DEFAULT_PYTHON


def build_venv(location: Path, python: str, requirements: str, log: Callable[[str], None]) -> Path:
    """A fresh virtual environment at `location` with `requirements` installed; its interpreter."""
    subprocess.run([find_python(python), "-m", "venv", str(location)], check=True, capture_output=True)
    interpreter = location / "bin" / "python"
    if requirements.strip():
        file = location / "requirements.txt"
        file.write_text(requirements)
        done = subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "-r", str(file)],
                              capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if done.returncode:
            raise FrameworkUnavailableError(f"pip could not install the pins: {done.stderr.strip()[-600:]}")
    (location / BUILT).write_text(requirements)
    log(f"  built a fresh Python {python} environment at {location}")
    return interpreter


def newest_release(package: str, python: str = DEFAULT_PYTHON) -> str | None:
    """The newest version of `package` for Python `python` the package index offers (`pip index versions`)."""
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package, "--python-version", python],
                          capture_output=True, text=True, timeout=300)
    found = re.search(rf"^{re.escape(package)} \(([^)]+)\)", done.stdout, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else None


def with_pin(requirements: str, package: str, version: str) -> str:
    """`requirements` with `package`'s pin replaced by `version`."""
    pattern = re.compile(rf"^{re.escape(package)}==\S+$", re.MULTILINE | re.IGNORECASE)
    return pattern.sub(f"{package}=={version}", requirements)


class Environments:
    """Fresh environments, one per (Python, requirements), built by this verifier from the pins alone; removed at the
    end, or kept in `root` (`--venvs`) and reused by a later call with the same pins."""

    def __init__(self, root: Path | None, log: Callable[[str], None]) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="dlcompat-verify-"))
        self.keep = root is not None
        self.built: dict[str, Path | Exception] = {}
        self.log = log

    def get(self, python: str, requirements: str) -> Path:
        key = hashlib.sha256(f"{python}\n{requirements}".encode()).hexdigest()[:12]
        location = self.root / f"py{python}-{key}"
        if key not in self.built and self.keep and (location / BUILT).exists():  # built by an earlier call
            self.built[key] = location / "bin" / "python"
        if key not in self.built:
            shutil.rmtree(location, ignore_errors=True)
            try:
                self.built[key] = build_venv(location, python, requirements, self.log)
            except (FrameworkUnavailableError, subprocess.SubprocessError, OSError) as exc:
                self.built[key] = exc
        built = self.built[key]
        if isinstance(built, Exception):
            raise FrameworkUnavailableError(str(built))
        return built

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _check_newest(folder: Path, tool: str, python: str, environments: Environments) -> str:
    requirements = (folder / "requirements.txt").read_text()
    pinned = re.search(rf"^{re.escape(tool)}==(\S+)$", requirements, re.MULTILINE | re.IGNORECASE)
    newest = newest_release(tool, python)
    if newest is None:
        return f"newest release of {tool}: the package index did not answer"
    if pinned and pinned.group(1) == newest:
        return f"still present in {tool} {newest} (the pinned version is the newest release)"
    try:
        interpreter = environments.get(python, with_pin(requirements, tool, newest))
    except FrameworkUnavailableError as exc:
        return f"{tool} {newest}: could not be installed with the other pins ({str(exc)[:200]})"
    outcome = run_reproducer(folder, interpreter)
    if outcome.code == 1:
        return f"still present in {tool} {newest}"
    if outcome.code == 0:
        return f"fixed in {tool} {newest}"
    return f"{tool} {newest}: cannot tell ({outcome.output.strip().splitlines()[-1:] or ['no output']})"


def verify_folder(folder: Path, environments: Environments, newest: bool = True) -> Verification:
    """Verify one reproducer folder (see the module docstring); writes `verified.json` beside it."""
    if not (folder / "repro.py").exists() or not (folder / "requirements.txt").exists():
        raise UserError(f"{folder} is not a reproducer folder (it needs repro.py and requirements.txt)")
    python = python_of(folder)
    result = Verification(str(folder), python)
    try:
        interpreter = environments.get(python, (folder / "requirements.txt").read_text())
    except FrameworkUnavailableError as exc:
        result.notes.append(f"no fresh environment: {exc}")
        return _save(folder, result)
    result.outcome = run_reproducer(folder, interpreter)
    if newest and result.reproduces and (folder / "finding.json").exists():
        result.newest = _check_newest(folder, read_problem(folder).tool, python, environments)
    return _save(folder, result)


def _save(folder: Path, result: Verification) -> Verification:
    (folder / VERIFIED).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def reproducer_folders(path: Path) -> list[Path]:
    """`path` itself when it is a reproducer folder, else the reproducer folders directly inside it."""
    if (path / "repro.py").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/repro.py"))
    if not found:
        raise UserError(f"no reproducer folder (one holding repro.py) at or directly inside {path}")
    return found


def verify_all(path: Path, *, newest: bool = True, venvs: Path | None = None,
               log: Callable[[str], None] = lambda _m: None) -> list[Verification]:
    environments = Environments(venvs, log)
    try:
        results = []
        for folder in reproducer_folders(path):
            results.append(verify_folder(folder, environments, newest))
            log(results[-1].line())
        return results
    finally:
        environments.close()
