"""Edge pytorch -> pte: ExecuTorch, the model exported with `torch.export` and lowered to a `.pte` program.

Variants:
- ``fp32``: lowered to the XNNPACK delegate (`XnnpackPartitioner`), ExecuTorch's CPU backend on phones.
- ``int8``: post-training static quantization with XNNPACK's quantizer (torchao's PT2E flow: int8
  weights per channel and int8 activations, calibrated on training images), then lowered to XNNPACK.
  The program keeps float input and output: the quantize/dequantize ops sit inside it.
- ``portable``: no delegate: ExecuTorch's portable reference kernels, what runs where no backend does.

The batch dimension is dynamic up to `MAX_BATCH`. The program is exported with an example of that
size: the memory ExecuTorch plans for a delegated input is sized by the example, not by the bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.frameworks.pytorch import PyTorchAdapter
from dlcompat.versions import installed_version
from dlcompat.zoo.spec import ModelSpec

VARIANTS = ("fp32", "int8", "portable")
MAX_BATCH = 256


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1,
            calibration: np.ndarray | None = None) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"torch.pte has no variant {variant!r} ({', '.join(VARIANTS)})")
    if variant == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("torch.pte (int8) needs calibration images from the training split (calibration=...)")
    import torch
    from executorch.exir import to_edge_transform_and_lower

    adapter = PyTorchAdapter(threads=threads)
    model = adapter.load(spec, source).eval()
    h, w, c = spec.input_shape
    example = (torch.zeros(MAX_BATCH, c, h, w),)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    facts: dict[str, Any] = {"variant": variant, "input_dtype": "float32", "output_dtype": "float32"}
    with torch.no_grad():
        if variant == "int8":
            model = _quantize(model, example, dynamic, calibration)  # type: ignore[arg-type]
            facts.update(weights="int8 (per channel)", activations="int8", calibration_images=len(calibration),
                         calibration_split="train", quantizer="XNNPACKQuantizer (symmetric, per channel, PT2E)")
        program = torch.export.export(model, example, dynamic_shapes=dynamic)
        partitioners = []
        if variant != "portable":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            partitioners = [XnnpackPartitioner()]
        lowered = to_edge_transform_and_lower(program, partitioner=partitioners).to_executorch()
    Path(target).write_bytes(lowered.buffer)
    return {"tool": "torch.export + executorch.exir.to_edge_transform_and_lower",
            "tool_version": installed_version("executorch"), "torch": torch.__version__,
            "delegate": "XNNPACK" if partitioners else "none (portable kernels)", "max_batch": MAX_BATCH,
            "input_layout": "NCHW", **facts}


def _quantize(model: Any, example: tuple[Any, ...], dynamic: Any, calibration: np.ndarray) -> Any:
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, example, dynamic_shapes=dynamic).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    images = torch.from_numpy(np.ascontiguousarray(calibration.transpose(0, 3, 1, 2), dtype=np.float32))
    for start in range(0, len(images), 32):
        prepared(images[start : start + 32])
    return convert_pt2e(prepared)
