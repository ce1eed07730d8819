"""The verifier on a reproducer that passes (the problem is gone) and one that fails (present), run with this
interpreter's ONNX Runtime instead of a fresh environment (building one would install packages); and the pieces
that do not need an index: Python of a folder, pins replaced, folders found, bad input refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcompat.errors import UserError
from dlcompat.findings.reproducer import write_reproducer
from dlcompat.findings.tools import TOOLS
from dlcompat.findings.verify import (
    VERIFIED,
    Environments,
    python_of,
    reproducer_folders,
    run_reproducer,
    verify_folder,
    with_pin,
)

from .test_reproducer import X, problem, relu_model


class ThisInterpreter(Environments):
    """Every environment is this interpreter: the verification's steps without pip."""

    def get(self, python: str, requirements: str) -> Path:
        self.built[requirements] = Path(sys.executable)
        return Path(sys.executable)


@pytest.fixture
def reproducers(tmp_path):
    good = write_reproducer(tmp_path / "all" / "fixed", problem(), TOOLS["onnxruntime"], relu_model(), [X],
                            [np.maximum(X, 0)])
    bad = write_reproducer(tmp_path / "all" / "present", problem(), TOOLS["onnxruntime"], relu_model(), [X],
                           [np.maximum(X, 0) * 2])
    return good, bad


def test_a_passing_and_a_failing_reproducer(reproducers, tmp_path):
    good, bad = reproducers
    assert run_reproducer(good, sys.executable).verdict == "does not reproduce"
    assert run_reproducer(bad, sys.executable).verdict == "reproduces"
    environments = ThisInterpreter(tmp_path / "venvs", log=lambda _m: None)
    results = [verify_folder(folder, environments, newest=False) for folder in reproducer_folders(tmp_path / "all")]
    assert [r.reproduces for r in results] == [False, True]
    assert json.loads((bad / VERIFIED).read_text())["outcome"]["code"] == 1
    assert "reproduces in a fresh Python 3.11" in results[1].line()


def test_pins_and_python(reproducers):
    good, _ = reproducers
    assert python_of(good) == "3.11"
    assert with_pin("numpy==2.0\nonnxruntime==1.20.0\n", "onnxruntime", "1.32.0") == "numpy==2.0\nonnxruntime==1.32.0\n"


def test_not_a_reproducer_folder(tmp_path):
    with pytest.raises(UserError, match="no reproducer folder"):
        reproducer_folders(tmp_path)
