"""Fixtures for the data layer: small IDX / CIFAR files built from real ones, and a loopback HTTP mirror."""

from __future__ import annotations

import functools
import gzip
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR_RECORD = 3073
CIFAR_BATCHES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")


def idx_bytes(array: np.ndarray) -> bytes:
    """An array of uint8 as an IDX file (big-endian header)."""
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_tiny_mnist(folder: Path, *, n_train: int = 20, n_test: int = 5, gz: bool = True, seed: int = 0) -> dict:
    """Four small, valid IDX files (random pixels, labels 0..9) in ``folder``; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) + 3) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.fixture(name="idx_bytes", scope="session")
def idx_bytes_fixture() -> Callable[[np.ndarray], bytes]:
    """`idx_bytes` as a fixture (helpers reach tests through fixtures under --import-mode=importlib)."""
    return idx_bytes


@pytest.fixture(scope="session")
def tiny_mnist() -> Callable[..., dict]:
    """`write_tiny_mnist` as a fixture."""
    return write_tiny_mnist


@pytest.fixture(scope="session")
def cifar_records(shared_data_dir: Path) -> dict[str, bytes]:
    """The first 7 records of each real CIFAR-10 batch (read from the start of each .bin.gz only)."""
    out = {}
    for batch in CIFAR_BATCHES:
        with gzip.open(shared_data_dir / "cifar10" / f"{batch}.gz", "rb") as fh:
            out[batch] = fh.read(7 * CIFAR_RECORD)
    return out


@pytest.fixture(scope="session")
def cifar_meta(shared_data_dir: Path) -> bytes:
    return (shared_data_dir / "cifar10" / "batches.meta.txt").read_bytes()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_mirror() -> Iterator[Callable[[Path], str]]:
    """Factory: serve a folder over HTTP on 127.0.0.1 (a real server in a thread); returns its base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
