"""Job `reproduce`: does a framework reproduce itself bit for bit? Train twice with one seed and compare."""

from __future__ import annotations

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.registry import make_adapter
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of


def run(ctx: JobContext) -> None:
    data = dataset_of(ctx)
    spec = spec_of(ctx)
    adapter = make_adapter(ctx.cell["framework"], threads=ctx.threads)
    settings = TrainSettings.from_dict({**ctx.params["train"], "seed": ctx.cell["seed"]})
    train = (to_float(data.train.x), data.train.y)
    val = (to_float(data.val.x[:0]), data.val.y[:0])
    runs = []
    for _ in range(2):
        model = adapter.build(spec, settings.seed)
        adapter.train(model, spec, train, val, settings)
        runs.append((adapter.get_weights(model), adapter.predict(model, to_float(data.test.x))))
    (w1, p1), (w2, p2) = runs
    max_weight = max(float(np.abs(w1[k].astype(np.float64) - w2[k]).max()) for k in w1)
    identical = all(np.array_equal(w1[k], w2[k]) for k in w1) and np.array_equal(p1, p2)
    method = {"runs": 2, "seed": settings.seed, "epochs": settings.epochs, "threads": ctx.threads,
              "framework_version": adapter.version(), "compared": "every weight and every test logit"}
    ctx.measure("bit_reproducible", 1.0 if identical else 0.0, "bool", method=method)
    ctx.measure("reproduce_max_weight_diff", max_weight, "", method=method)
    ctx.measure("reproduce_label_flips", float((p1.argmax(1) != p2.argmax(1)).sum()), "count", method=method)
