"""Fixtures shared by the whole suite: where the real test data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("DLCOMPAT_TEST_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Real MNIST and CIFAR-10 files in their original formats (../shared/data, see its README)."""
    path = _shared_data_dir()
    if not (path / "mnist").is_dir():
        pytest.fail(f"real test data not found at {path}: put ../shared/data beside the checkout "
                    "or set DLCOMPAT_TEST_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def mnist_small(shared_data_dir):
    """Real MNIST from ../shared/data, limited to 2,000 training and 500 test images."""
    from dlcompat.data.registry import load_dataset

    return load_dataset("mnist", shared_data_dir, limit_train=2000, limit_test=500, download=False)
