"""The job request: built once by the runner from a planned job and the config, the same JSON line for the worker."""

from __future__ import annotations

import json

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.config import parse_config
from dlcompat.study.dag import Job
from dlcompat.study.request import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, JobRequest
from dlcompat.study.runner import job_request

CELL = {"dataset": "digits", "model": "lenet1", "framework": "pytorch", "seed": 0, "target": "pytorch", "variant": ""}


def test_a_request_takes_its_limits_from_the_job_else_the_config(tmp_path):
    config = parse_config('name = "r"\nthreads = 2\nretries = 5\nmemory_limit_mb = 900\ntrain_gpus = 0.5')
    train = Job("train", "main", {"cell": CELL, "threads": 2}, {}, "train", runtime={"timeout_s": 60, "retries": 1})
    request = job_request(train, {"data": {"data": "ab"}}, ArtifactStore(tmp_path), config)
    assert (request.kind, request.env, request.threads, request.key, request.label) == ("train", "main", 2,
                                                                                        train.key, "train")
    assert (request.timeout_s, request.retries, request.memory_limit_mb, request.gpus) == (60, 1, 900, 0.5)
    assert request.artifacts_root == str(tmp_path) and request.inputs == {"data": {"data": "ab"}}

    dataset = Job("dataset", "main", {"dataset": "digits"}, {}, "load", runtime={"data_dir": "/data"})
    request = job_request(dataset, {}, ArtifactStore(tmp_path), config)
    assert request.threads == 1 and request.gpus == 0.0 and request.timeout_s == DEFAULT_TIMEOUT_S
    assert request.params == {"dataset": "digits", "data_dir": "/data"}  # where data is read from: not in the key


def test_the_wire_format_is_a_json_object_of_the_fields():
    request = JobRequest(kind="fault", params={"cell": CELL}, env="theano", threads=3, key="k")
    line = request.to_json()
    assert json.loads(line)["threads"] == 3 and json.loads(line)["artifacts_root"] == ""
    assert JobRequest.from_json(line) == request
    older = JobRequest.from_json('{"kind": "fault", "params": {}, "inputs": {}, "artifacts_root": "/a", "threads": 2}')
    assert (older.env, older.threads, older.retries) == ("main", 2, DEFAULT_RETRIES)
    assert request.cell == CELL and request.replace(threads=1).threads == 1
