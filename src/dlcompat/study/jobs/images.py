"""Job `images`: a check's images (the user's `.npz` or folder, `data.user_images`) stored as a dataset `.npz`.

The first `calibration_images` images (at most a quarter of them) become the training split, which is all that a
check's int8 converters calibrate on; the rest are the test split every runtime is evaluated on, so no model is
judged on the images it was calibrated with. Unlabelled images carry the label -1: the evaluate and compare jobs
then report agreement with the source model instead of accuracy.
"""

from __future__ import annotations

import numpy as np

from dlcompat.data.registry import Dataset, Split, save_npz
from dlcompat.data.scaling import SCALES
from dlcompat.data.user_images import read_user_images
from dlcompat.study.jobs.base import JobContext

#: the label of an image the user gave no label for
UNLABELLED = -1


def calibration_count(n: int, wanted: int) -> int:
    """How many of `n` images calibrate: `wanted`, at most a quarter of them (at least one evaluation image stays)."""
    return max(0, min(int(wanted), n // 4))


def run(ctx: JobContext) -> None:
    p = ctx.params
    shape = tuple(int(v) for v in p["input_shape"])
    images = read_user_images(p["images"], shape=shape, num_classes=int(p["num_classes"]),  # type: ignore[arg-type]
                              resize=bool(p.get("resize")), labels=p.get("labels"), limit=p.get("limit"))
    n = len(images.x)
    labelled = images.y is not None
    y = images.y.astype(np.int64) if labelled else np.full(n, UNLABELLED, np.int64)
    k = calibration_count(n, int(p.get("calibration_images", 0)))
    empty = Split(images.x[:0], y[:0])
    names = images.class_names or tuple(str(i) for i in range(int(p["num_classes"])))
    data = Dataset(name="images", train=Split(images.x[:k], y[:k]), val=empty, test=Split(images.x[k:], y[k:]),
                   class_names=tuple(names), source=images.source)
    with ctx.artifacts.writing(".npz") as tmp:
        save_npz(data, tmp)
        ctx.outputs["data"] = ctx.artifacts.put_file(tmp, ".npz")
    statement = f"the first {k} of the {n} images calibrate int8 conversions; the other {n - k} are evaluated"
    ctx.measure("calibration_images", k, "images", dataset="images", model=p["model"], framework=p["format"],
                target=p["format"], variant="", seed=0,
                method={"images": n, "evaluated": n - k, "statement": statement, "source": images.source,
                        "scale": p.get("scale", "0-1"), "labelled": labelled})
    ctx.outputs.update(
        input_shape=list(shape), num_classes=int(p["num_classes"]), imported=p["model"], labelled=labelled,
        input_scale=p.get("scale", "0-1"), scale_meaning=SCALES[p.get("scale", "0-1")],
        sizes={"train": k, "val": 0, "test": n - k}, source=images.source,
        calibration=statement,
    )
