"""Job `dataset`: load a dataset once, split and limit it, and store it as one `.npz` every environment can read."""

from __future__ import annotations

from dlcompat.data.registry import load_dataset, save_npz
from dlcompat.study.jobs.base import JobContext


def run(ctx: JobContext) -> None:
    p = ctx.params
    data = load_dataset(
        p["dataset"],
        p.get("data_dir"),
        limit_train=p.get("limit_train"),
        limit_test=p.get("limit_test"),
        val_fraction=p.get("val_fraction", 0.1),
        split_seed=p.get("split_seed", 0),
    )
    with ctx.artifacts.writing(".npz") as tmp:
        save_npz(data, tmp)
        ctx.outputs["data"] = ctx.artifacts.put_file(tmp, ".npz")
    ctx.outputs.update(
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        sizes={"train": len(data.train.y), "val": len(data.val.y), "test": len(data.test.y)},
        source=data.source,
    )
