"""Edge pytorch -> coreml: coremltools converts the `torch.export` program of the model into an ML Program.

The input keeps PyTorch's NCHW layout, named ``input``, with a batch from 1 to `MAX_BATCH`; the output is
``logits``. Precisions as in `dlcompat.converters.coreml_package`. Conversion runs anywhere; running the
package needs macOS (`dlcompat.runtimes.coreml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.coreml_package import DEPLOYMENT_TARGET, check_variant, finish, precision
from dlcompat.frameworks.pytorch import PyTorchAdapter
from dlcompat.zoo.spec import ModelSpec

MAX_BATCH = 256


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1) -> dict[str, Any]:
    check_variant("torch.coreml", variant)
    import coremltools as ct
    import torch

    adapter = PyTorchAdapter(threads=threads)
    model = adapter.load(spec, source).eval()
    h, w, c = spec.input_shape
    with torch.no_grad():
        program = torch.export.export(model, (torch.zeros(2, c, h, w),),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},))
        program = program.run_decompositions({})
    mlmodel = ct.convert(program, convert_to="mlprogram", compute_precision=precision(variant),
                         minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
                         inputs=[ct.TensorType(name="input", shape=(ct.RangeDim(1, MAX_BATCH, 1), c, h, w),
                                               dtype=np.float32)],
                         outputs=[ct.TensorType(name="logits")])
    facts = finish(mlmodel, variant, target)
    return {"tool": "coremltools.convert (torch.export program)", "tool_version": facts["coremltools"],
            "torch": torch.__version__, "input_layout": "NCHW", "input_name": "input", "output_name": "logits",
            **facts}
