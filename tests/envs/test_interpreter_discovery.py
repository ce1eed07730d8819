"""Interpreter discovery: a candidate is used only if it runs and reports the wanted version."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dlcompat.envs import registry
from dlcompat.envs.registry import ToolchainEnv, find_python, interpreter_version, sync_env
from dlcompat.errors import FrameworkUnavailableError


def _broken_shim(folder: Path, name: str) -> Path:
    """A `pythonX.Y` like pyenv's shim for an installed but unselected version: it prints and exits 127."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / name
    shim.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim


def _working_version() -> str:
    """A Python version installed here beside the driver's (3.12 where pyenv has it), else the driver's own."""
    for version in ("3.12", "3.13"):
        try:
            find_python(version)
            return version
        except FrameworkUnavailableError:
            continue
    return "3.11"


def test_a_broken_shim_first_on_path_is_passed_over(tmp_path, monkeypatch):
    version = _working_version()
    shim = _broken_shim(tmp_path / "shims", f"python{version}")
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    assert interpreter_version(str(shim)) is None
    found = find_python(version)
    assert found != str(shim)
    assert interpreter_version(found) == version


def test_no_working_interpreter_is_one_sentence_that_says_what_to_install(tmp_path, monkeypatch):
    shim = _broken_shim(tmp_path / "shims", "python3.99")
    monkeypatch.setenv("PATH", str(shim.parent))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    with pytest.raises(FrameworkUnavailableError, match=r"no working Python 3\.99 .*install it"):
        find_python("3.99")


def test_a_real_environment_is_built_past_a_broken_shim(tmp_path, monkeypatch):
    version = _working_version()
    shim = _broken_shim(tmp_path / "shims", f"python{version}")
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DLCOMPAT_ENVS_DIR", str(tmp_path / "envs"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pip\n")  # already in every new venv: nothing is downloaded
    env = ToolchainEnv("discovery-test", version, str(requirements), "a test environment")
    registry.register_env(env)
    try:
        python = sync_env(env.name)
    finally:
        registry.ENVS.remove(env.name)
    assert python.parent.parent.parent == tmp_path / "envs"
    assert interpreter_version(str(python)) == version
