"""Job `compare`: a target's predictions against its source's, from their stored logits (NumPy only).

Every figure can be recomputed outside dlcompat: the rows' `artifact` is the target's logits and
`method.source_logits` the source's, both `.npy` files in the artifact store.
"""

from __future__ import annotations

from dlcompat.metrics.accuracy import top1_accuracy
from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of


def run(ctx: JobContext) -> None:
    source_path = ctx.inputs["source"]["logits"]
    target_path = ctx.inputs["target"]["logits"]
    source = ctx.artifacts.get_array(source_path)
    target = ctx.artifacts.get_array(target_path)
    result = compare_logits(source, target)
    method = {"source_logits": source_path, "target_logits": target_path, "images": result.n,
              "flip": "argmax differs", "top5": "equal sets of the 5 largest logits",
              "tolerances": "smallest atol (rtol=0) and rtol (atol=0) for np.allclose(target, source)"}

    def measure(metric: str, value: float, unit: str = "") -> None:
        ctx.measure(metric, value, unit, artifact=target_path, method=method)

    measure("label_flips", result.label_flips, "count")
    measure("label_flip_rate", result.label_flip_rate, "fraction")
    measure("top5_agreement", result.top5_agreement, "fraction")
    measure("max_abs_logit_diff", result.max_abs_logit_diff)
    measure("mean_abs_logit_diff", result.mean_abs_logit_diff)
    measure("p99_abs_logit_diff", result.p99_abs_logit_diff)
    measure("min_atol", result.min_atol)
    measure("min_rtol", result.min_rtol)
    if "data" in ctx.inputs:
        labels = dataset_of(ctx).test.y
        source_acc, target_acc = top1_accuracy(source, labels), top1_accuracy(target, labels)
        measure("source_accuracy", source_acc, "fraction")
        measure("accuracy_change", target_acc - source_acc, "fraction")
    ctx.outputs.update(result.to_dict())
