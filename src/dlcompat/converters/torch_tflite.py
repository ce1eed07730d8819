"""Edge pytorch -> tflite: litert-torch (Google's PyTorch -> LiteRT converter), in the `litert-torch` environment.

litert-torch exports the module with `torch.export` and lowers it to a LiteRT flatbuffer. The model is
first wrapped in a module that transposes NHWC images to NCHW (`litert_torch.to_channel_last_io`'s
idea, as a plain one-argument module), so the `.tflite` takes
NHWC images like every other LiteRT deployment. Variants, as far as litert-torch's PT2E quantizer goes:
- ``fp32``: the float model.
- ``int8-dynamic``: int8 weights (per channel), activations quantized per call (`is_dynamic=True`).
- ``int8-full``: static quantization, int8 weights and activations calibrated on training images;
  litert-torch then gives the model int8 input and output (their scale and zero point in the model).
litert-torch has no float16 mode for a plain `nn.Module` (its fp16 recipes are for its generative API).

The batch is static, one image, as a phone app calls it: litert-torch 0.10 fails to lower a dynamic
batch through the model's flatten (`view` with a symbolic size). The LiteRT runner runs such a model
one batch of its own size at a time.

It runs in its own environment: its dependencies (xdsl pins typing-extensions < 4.13) would downgrade
pydantic in the main one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.frameworks.pytorch import PyTorchAdapter
from dlcompat.versions import installed_version
from dlcompat.zoo.spec import ModelSpec

VARIANTS = ("fp32", "int8-dynamic", "int8-full")
BATCH = 1


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1,
            calibration: np.ndarray | None = None) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"litert-torch.tflite has no variant {variant!r} ({', '.join(VARIANTS)})")
    if variant == "int8-full" and (calibration is None or len(calibration) == 0):
        raise ValueError("litert-torch.tflite (int8-full) needs calibration images from the training split")
    import litert_torch
    import torch

    adapter = PyTorchAdapter(threads=threads)
    h, w, c = spec.input_shape
    model = _channel_last(adapter.load(spec, source).eval())
    example = (torch.zeros(BATCH, h, w, c),)
    facts: dict[str, Any] = {"variant": variant, "input_dtype": "float32", "output_dtype": "float32",
                             "weights": "float32"}
    options: dict[str, Any] = {}
    if variant != "fp32":
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        dynamic_range = variant == "int8-dynamic"
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                                  is_dynamic=dynamic_range))
        graph = torch.export.export(model, example).module()
        prepared = prepare_pt2e(graph, quantizer)
        images = example[0] if dynamic_range else torch.from_numpy(np.ascontiguousarray(calibration,
                                                                                        dtype=np.float32))
        with torch.no_grad():
            for start in range(0, len(images), BATCH):
                prepared(images[start : start + BATCH])
        model = convert_pt2e(prepared, fold_quantize=False)
        options["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
        facts["weights"] = "int8 (per channel)"
        if dynamic_range:
            facts["activations"] = "float32 (quantized per call)"
        else:
            facts.update(activations="int8", calibration_images=len(calibration), calibration_split="train")
    with torch.no_grad():
        edge_model = litert_torch.convert(model, example, **options)
    edge_model.export(str(target))
    facts.update(_io_dtypes(target))
    return {"tool": "litert-torch (litert_torch.convert, channel-last input)",
            "tool_version": installed_version("litert_torch"), "torch": torch.__version__,
            "input_layout": "NHWC", "batch": BATCH, **facts}


def _channel_last(model: Any) -> Any:
    import torch

    class ChannelLast(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x.permute(0, 3, 1, 2))

    return ChannelLast(model).eval()


def _io_dtypes(path: Path) -> dict[str, str]:
    """The input and output types of the written model, as LiteRT reads them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {"input_dtype": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
            "output_dtype": np.dtype(interpreter.get_output_details()[0]["dtype"]).name}
