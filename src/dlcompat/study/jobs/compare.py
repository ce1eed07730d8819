"""Job `compare`: prediction inconsistency of a target's logits against its source's (NumPy only)."""

from __future__ import annotations

from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.study.jobs.base import JobContext


def run(ctx: JobContext) -> None:
    source_path = ctx.inputs["source"]["logits"]
    target_path = ctx.inputs["target"]["logits"]
    result = compare_logits(ctx.artifacts.get_array(source_path), ctx.artifacts.get_array(target_path))
    method = {"source_logits": source_path, "target_logits": target_path, "images": result.n,
              "flip": "argmax differs"}
    ctx.measure("label_flips", result.label_flips, "count", artifact=target_path, method=method)
    ctx.measure("label_flip_rate", result.label_flip_rate, "fraction", artifact=target_path, method=method)
    ctx.measure("max_abs_logit_diff", result.max_abs_logit_diff, "", artifact=target_path, method=method)
    ctx.measure("mean_abs_logit_diff", result.mean_abs_logit_diff, "", artifact=target_path, method=method)
    ctx.outputs.update(result.to_dict())
