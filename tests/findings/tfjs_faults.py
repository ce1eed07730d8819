"""Seeded faults injected into copies of real TF.js graph model archives (`model.json` and its weight shards), at
nodes found through the honest archive's alignment (never by value)."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def edited_tfjs(source: Path, target: Path, *, model: Callable[[dict[str, Any]], None] | None = None,
                weight: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> Path:
    """A copy of the archive with `model` applied to its `model.json` and `weight` = (a float32 weight's name,
    its new value from the old) written into its shard."""
    with zipfile.ZipFile(source) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    spec = json.loads(files["model.json"])
    if model is not None:
        model(spec)
    if weight is not None:
        _edit_weight(spec, files, *weight)
    files["model.json"] = json.dumps(spec).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _edit_weight(spec: dict[str, Any], files: dict[str, bytes], name: str,
                 change: Callable[[np.ndarray], np.ndarray]) -> None:
    for group in spec["weightsManifest"]:
        data, offset = bytearray(b"".join(files[p] for p in group["paths"])), 0
        for entry in group["weights"]:
            size = int(np.prod(entry["shape"], dtype=np.int64)) * 4  # float32 / int32 entries only
            if entry["name"] == name:
                assert entry["dtype"] == "float32" and "quantization" not in entry, entry
                old = np.frombuffer(bytes(data[offset:offset + size]), "<f4").reshape(entry["shape"])
                data[offset:offset + size] = np.asarray(change(old.copy()), "<f4").tobytes()
                assert len(group["paths"]) == 1, "one shard per group"
                files[group["paths"][0]] = bytes(data)
                return
            offset += size
    raise KeyError(name)


def relu_dropped(node: str) -> Callable[[dict[str, Any]], None]:
    """The ReLU node `node` computes the identity instead."""

    def edit(spec: dict[str, Any]) -> None:
        found = next(n for n in spec["modelTopology"]["node"] if n["name"] == node)
        assert found["op"] == "Relu", found["op"]
        found["op"] = "Identity"

    return edit


def fused_activation_dropped(node: str) -> Callable[[dict[str, Any]], None]:
    """The `_FusedConv2D` / `_FusedMatMul` node `node` without its fused activation (its bias kept)."""

    def edit(spec: dict[str, Any]) -> None:
        found = next(n for n in spec["modelTopology"]["node"] if n["name"] == node)
        listed = found["attr"]["fused_ops"]["list"]
        kept = [s for s in listed["s"] if base64.b64decode(s).decode() not in ("Relu", "Relu6")]
        assert len(kept) < len(listed["s"]), listed
        listed["s"] = kept

    return edit


def channel_scaled(factor: float, channel: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """One output channel of an HWIO kernel (or an (in, out) matrix) scaled by `factor`."""

    def change(kernel: np.ndarray) -> np.ndarray:
        kernel[..., channel] *= factor
        return kernel

    return change
