"""Helpers the job modules share: reading the dataset artifact and building the cell's spec."""

from __future__ import annotations

from typing import Any

from dlcompat.data.registry import Dataset, load_npz
from dlcompat.study.jobs.base import JobContext
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import ModelSpec


def dataset_of(ctx: JobContext) -> Dataset:
    return load_npz(ctx.artifacts.path(ctx.inputs["data"]["data"]))


def spec_of(ctx: JobContext) -> ModelSpec:
    data: dict[str, Any] = ctx.inputs["data"]
    return build_spec(ctx.cell["model"], tuple(data["input_shape"]), int(data["num_classes"]))
