"""Job `train`: train one model in one framework natively; store the framework's own file and canonical weights."""

from __future__ import annotations

import time

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.lr_schedule import describe_schedule
from dlcompat.frameworks.registry import make_adapter
from dlcompat.metrics.memory import peak_rss_bytes, reset_peak_rss
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of


def run(ctx: JobContext) -> None:
    data = dataset_of(ctx)
    spec = spec_of(ctx)
    adapter = make_adapter(ctx.cell["framework"], threads=ctx.threads)
    settings = TrainSettings.from_dict({**ctx.params["train"], "seed": ctx.cell["seed"]})
    model = adapter.build(spec, settings.seed)
    memory_reset = reset_peak_rss()
    start = time.perf_counter()
    history = adapter.train(
        model, spec, (to_float(data.train.x), data.train.y), (to_float(data.val.x), data.val.y), settings,
        progress=ctx.progress,
    )
    total = time.perf_counter() - start
    with ctx.artifacts.writing(adapter.native_suffix) as tmp:
        adapter.save(model, tmp)
        model_path = ctx.artifacts.put_file(tmp, adapter.native_suffix)
    with ctx.artifacts.writing(".npz") as tmp:
        np.savez(tmp, **adapter.get_weights(model))
        weights_path = ctx.artifacts.put_file(tmp, ".npz")
    ctx.outputs.update(
        artifact=model_path, format=ctx.cell["framework"], weights=weights_path,
        history=history.to_dict(), framework_version=adapter.version(), input_layout="NHWC",
    )
    method = {"settings": settings.__dict__, "threads": ctx.threads, "train_images": len(data.train.y),
              "framework_version": adapter.version(), "lr_schedule": describe_schedule(settings),
              "lr_per_epoch": history.learning_rate, "augmentation": settings.augmentation}
    ctx.measure("train_time", total, "s", artifact=model_path, method=method)
    ctx.measure("train_time_per_epoch", float(np.median(history.epoch_time_s)), "s",
                method={**method, "statistic": "median over epochs", "epochs": len(history.epoch_time_s)})
    ctx.measure("final_train_loss", history.train_loss[-1], "", method=method)
    ctx.measure("val_accuracy", history.val_accuracy[-1], "fraction", method=method)
    ctx.measure("train_peak_rss", peak_rss_bytes(), "bytes",
                method={"api": "VmHWM reset before training" if memory_reset else "ru_maxrss (process-wide)",
                        "scope": "training, in the worker (the framework's resident memory included)"})
    for epoch, (seconds, loss, val_acc, lr) in enumerate(
        zip(history.epoch_time_s, history.train_loss, history.val_accuracy, history.learning_rate, strict=True),
        start=1,
    ):
        curve = {"epoch": epoch, "epochs": len(history.epoch_time_s), "lr": lr}
        ctx.measure("epoch_time", seconds, "s", method=curve)
        ctx.measure("epoch_train_loss", loss, "", method=curve)
        ctx.measure("epoch_val_accuracy", val_acc, "fraction", method=curve)
