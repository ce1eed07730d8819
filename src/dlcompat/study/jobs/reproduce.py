"""Job `reproduce`: does a framework reproduce itself bit for bit? Train again with the seed of the stored
`train` job, in a fresh worker, and compare every weight and every test logit with that stored model.

The stored model is loaded from the framework's own file, so both sides run the same `predict` path.
"""

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
    trained = ctx.inputs["model"]
    x_test = to_float(data.test.x)
    with np.load(ctx.artifacts.path(trained["weights"]), allow_pickle=False) as stored:
        w1 = {k: stored[k] for k in stored.files}
    p1 = adapter.predict(adapter.load(spec, ctx.artifacts.path(trained["artifact"])), x_test)
    model = adapter.build(spec, settings.seed)
    adapter.train(model, spec, (to_float(data.train.x), data.train.y), (to_float(data.val.x), data.val.y), settings)
    w2, p2 = adapter.get_weights(model), adapter.predict(model, x_test)
    max_weight = max(float(np.abs(w1[k].astype(np.float64) - w2[k]).max()) for k in w1)
    identical = w1.keys() == w2.keys() and all(np.array_equal(w1[k], w2[k]) for k in w1) and np.array_equal(p1, p2)
    method = {"runs": 2, "seed": settings.seed, "epochs": settings.epochs, "threads": ctx.threads,
              "framework_version": adapter.version(),
              "compared": "every weight and every test logit of the stored train job's model and of one retraining "
                          "in another process"}
    ctx.measure("bit_reproducible", 1.0 if identical else 0.0, "bool", method=method)
    ctx.measure("reproduce_max_weight_diff", max_weight, "", method=method)
    ctx.measure("reproduce_label_flips", float((p1.argmax(1) != p2.argmax(1)).sum()), "count", method=method)
