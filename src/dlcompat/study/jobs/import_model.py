"""Job `import`: a check's model file, inspected (`frameworks.imported`) and copied into the artifact store.

The file must still be the one the check was planned for (its SHA-256 is part of the job's key): a file changed
between planning and running is a user error, not a finding. The copy keeps the file's own suffix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dlcompat.errors import ModelFileError
from dlcompat.frameworks.imported import inspect_model
from dlcompat.study.jobs.base import JobContext


def run(ctx: JobContext) -> None:
    p = ctx.params
    shape = tuple(p["input_shape"]) if p.get("kind") == "torchscript" else None  # TorchScript does not say
    model = inspect_model(Path(p["path"]), p.get("input_layout"), shape)  # type: ignore[arg-type]
    if model.sha256 != p["sha256"]:
        raise ModelFileError(f"{p['path']} changed after the check was planned: run the command again")
    suffix = Path(p["path"]).suffix
    with ctx.artifacts.writing(suffix) as tmp:
        shutil.copyfile(p["path"], tmp)
        artifact = ctx.artifacts.put_file(tmp, suffix)
    ctx.outputs.update(artifact=artifact, format=model.format, kind=model.kind, input_layout=model.input_layout,
                       input_shape=list(model.input_shape), num_classes=model.num_classes,
                       dynamic_batch=model.dynamic_batch, facts=model.facts)
