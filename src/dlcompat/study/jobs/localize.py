"""Job `localize`: one derived artifact (ONNX, `.tflite`, `.pte`, a TF.js graph model run in headless Chromium, or
onnx2tf's SavedModel, whose job runs in the onnx2tf environment) against the float64 reference of its trained
source, against the source's measured noise floor (`noise_floor` job), localised to its first divergent layer and
typed (`findings.hop.localise_hop`) where its output exceeds that floor.

Cheap by construction: the output is compared first, on the floor's few test images, and the layers only when it
exceeds noise. A graph that does not align to the spec is compared at its output, with the reason (never a failed
cell: the hop's own evaluation and comparison say whether it runs). The whole result is stored as a JSON artifact;
the cell's row `output_noise_ratio` (the output's rmse over its floor) carries the verdict, the first divergent
layer, the fault type and its evidence in its method.
"""

from __future__ import annotations

import json

from dlcompat.errors import ModelFileError, one_line
from dlcompat.findings.hop import localise_hop
from dlcompat.frameworks.base import Unavailable
from dlcompat.metrics.noise import NoiseFloor
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import spec_of
from dlcompat.study.jobs.noise_floor import hop_images, trained_weights


def run(ctx: JobContext) -> None:
    floor = NoiseFloor.from_dict(json.loads(ctx.artifacts.path(ctx.inputs["floor"]["floor"]).read_text()))
    target = ctx.inputs["target"]
    try:
        result = localise_hop(spec_of(ctx), trained_weights(ctx), hop_images(ctx),
                              ctx.artifacts.path(target["artifact"]), target["format"], floor,
                              input_layout=target.get("input_layout", "NHWC"), threads=ctx.threads,
                              output_first=True, strict=False)
    except (ModelFileError, Unavailable) as exc:  # the artifact does not load or run: its evaluation's finding
        ctx.measure("output_noise_ratio", None, "x floor", method={"verdict": "not localised",
                                                                   "reason": one_line(exc)})
        return
    # the stored JSON is a pure function of its inputs (a re-run stores the same object): the artifact by its
    # reference, not this machine's path; the time it took is a row of its own
    data = {**result.to_dict(), "candidate": target["artifact"]}
    seconds = data.pop("seconds")
    with ctx.artifacts.writing(".json") as tmp:
        tmp.write_text(json.dumps(data))
        path = ctx.artifacts.put_file(tmp, ".json")
    summary = {key: data[key] for key in ("verdict", "first_divergent_layer", "fault_type", "evidence")}
    method = {**summary, "floor": ctx.inputs["floor"]["statement"], "k": floor.k, "precision": data["precision"],
              "unit": result.localisation.layers[-1].unit if result.output_judged else result.logits["unit"],
              "images": result.images, "localisation": path, "artifact_localised": target["artifact"]}
    ctx.measure("output_noise_ratio", result.output_ratio, "x floor", artifact=path, method=method)
    ctx.measure("localisation_time", seconds, "s", artifact=path,
                method={"scope": "align, read the runtime's tensors, localise, diagnose", "images": result.images})
    ctx.outputs.update(summary, localisation=path)
