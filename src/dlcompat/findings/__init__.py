"""Findings: where a derived model starts to differ from its spec's meaning, and why (issue 18).

- `graph`: an artifact's operator graph (ONNX, LiteRT `.tflite`) read structurally, as `GraphNode`s;
- `align`: each canonical layer of a spec mapped to the artifact tensor that holds it, or a reason why none does;
- `localise`: per-layer errors of those tensors against the float64 reference, judged against the noise floor;
- `parameters`: an artifact's conv / dense parameters in the canonical layout, and what they should be;
- `diagnose`: the fault type at the first divergent layer, from a fixed set, with its evidence.
"""
