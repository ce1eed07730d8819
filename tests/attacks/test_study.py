"""The robustness study wired into the planner and the runner: attack and transfer rows, sets, report, export."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.metrics.robustness import attack_figures
from dlcompat.report.document import build_document
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import load_preset, parse_config
from dlcompat.study.plan import build_plan
from dlcompat.study.runner import run_study

TINY = """
name = "tiny-robustness"
models = ["lenet1"]
frameworks = ["pytorch"]
check_reproducibility = false
[data]
limit_train = 400
limit_test = 60
[train]
epochs = 4
[latency]
warmup = 1
warmup_time_s = 0.0
min_repeats = 3
min_time_s = 0.0
max_time_s = 1.0
[attacks]
methods = ["fgsm", "deepfool"]
epsilons = [0.1, 0.2]
images = 30
deepfool_steps = 10
"""
ATTACK_METRICS = {"attack_success_rate", "robust_accuracy", "perturbation_l2_mean", "perturbation_l2_max",
                  "perturbation_linf_mean", "perturbation_linf_max", "attack_time", "attack_time_per_image"}
TRANSFER_METRICS = {"transfer_success_rate", "transfer_source_success_rate", "transfer_rate",
                    "transfer_robust_accuracy", "adversarial_agreement"}


def test_attacks_follow_every_trained_model_and_transfers_every_derived_one():
    config = parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow"]\nmigration = ["weights"]\n'
                          '[attacks]\nmethods = ["fgsm", "cw-l2"]')
    plan = build_plan(config)
    kinds = Counter(job.kind for job in plan.jobs.values())
    assert kinds["attack"] == 4  # 2 frameworks x 2 attacks
    evaluations = [e for e in plan.jobs.values() if e.kind == "evaluate" and e.params["runtime"] != "native"]
    assert kinds["transfer"] == len(evaluations)  # one per derived model, whatever the number of attacks
    transfers = {(j.params["cell"]["framework"], j.params["cell"]["target"], j.params["route"])
                 for j in plan.jobs.values() if j.kind == "transfer"}
    # each native model -> its ONNX Runtime deployment and the other framework by weight transfer
    assert {("pytorch", "onnxruntime", "torch.onnx (dynamo)"), ("pytorch", "tensorflow", "weight transfer"),
            ("tensorflow", "pytorch", "weight transfer"),
            ("tensorflow", "onnxruntime", "keras.onnx (keras)")} <= transfers
    for job in plan.jobs.values():
        if job.kind == "transfer":  # loaded exactly as the derived model's evaluation loads it
            evaluation = next(e for e in evaluations if e.deps == {
                "data": job.deps["data"], "model": job.deps["model"]} and e.params["cell"]["target"]
                == job.params["cell"]["target"] and e.params["cell"]["variant"] == job.params["route"])
            assert all(job.params.get(k) == evaluation.params.get(k) for k in ("runtime", "adapter", "artifact_key"))
            assert job.env == evaluation.env and job.params["attacks"] == ["fgsm", "cw-l2"]
            # every attack of the source is an input, and one that fails does not stop the others' transfer
            attacks = {role: plan.jobs[key] for role, key in job.deps.items() if role.startswith("adversarial:")}
            assert {a.params["attack"] for a in attacks.values()} == {"fgsm", "cw-l2"}
            assert {a.params["cell"]["framework"] for a in attacks.values()} == {job.params["cell"]["framework"]}
            assert set(job.tolerates) == set(attacks)
            assert job.params["cell"]["variant"] == f"fgsm, cw-l2 · {job.params['route']}"
    # attack settings are in the attack job's key: only the attack whose setting changed is planned anew
    changed = build_plan(parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow"]\n'
                                      'migration = ["weights"]\n[attacks]\nmethods = ["fgsm", "cw-l2"]\ncw_steps = 3'))
    before = {k for k, j in plan.jobs.items() if j.kind == "attack"}
    after = {k: j.params["attack"] for k, j in changed.jobs.items() if j.kind == "attack"}
    assert {name for key, name in after.items() if key not in before} == {"cw-l2"}


def test_the_quick_preset_transfers_to_every_derived_model_in_one_job_each():
    plan = build_plan(load_preset("quick"))
    evaluations = [e for e in plan.jobs.values() if e.kind == "evaluate" and e.params["runtime"] != "native"]
    transfers = [j for j in plan.jobs.values() if j.kind == "transfer"]
    assert len(transfers) == len(evaluations)
    assert {j.params["runtime"] for j in transfers} >= {"onnxruntime", "weights", "ortweb", "tfjs", "litert",
                                                        "executorch"}
    assert all(len([r for r in j.deps if r.startswith("adversarial:")]) == 2 for j in transfers)  # FGSM, PGD


def test_transfer_can_be_limited_to_some_runtimes_or_switched_off():
    base = 'models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow"]\nmigration = ["weights"]\n[attacks]\n'

    def targets(transfer: str) -> set[str]:
        plan = build_plan(parse_config(base + f'methods = ["fgsm"]\ntransfer = {transfer}'))
        return {j.params["runtime"] for j in plan.jobs.values() if j.kind == "transfer"}

    assert targets("true") == {"onnxruntime", "weights"}
    assert targets('["onnxruntime"]') == {"onnxruntime"}
    assert targets("false") == set()


def test_no_attack_section_plans_no_attack_and_the_presets_name_theirs():
    assert not [j for j in build_plan(parse_config('models = ["lenet1"]')).jobs.values()
                if j.kind in ("attack", "transfer")]
    assert load_preset("quick").attacks.methods == ["fgsm", "pgd"]
    for name in ("paper-mnist", "paper-cifar10"):
        assert load_preset(name).attacks.methods == ["fgsm", "bim", "pgd", "cw-l2", "deepfool", "jsma"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("robustness")
    summary = run_study(parse_config(TINY), out, executor="inline")
    return out, summary, ResultStore(database_url(out)).rows(summary.run_id)


def test_the_quick_wiring_records_robustness_and_transfer_rows(study):
    _out, summary, rows = study
    assert summary.failed == 0 and summary.skipped == 0, summary.findings
    attack = {(r["variant"], r["metric"]) for r in rows if r["kind"] == "attack" and r["status"] == "ok"}
    for variant in ("fgsm eps=0.1", "fgsm eps=0.2", "deepfool overshoot=0.02"):
        assert {(variant, m) for m in ATTACK_METRICS} <= attack
    transfer = [r for r in rows if r["kind"] == "transfer"]
    assert {r["target"] for r in transfer} == {"onnxruntime"}
    assert {(r["variant"], r["metric"]) for r in transfer} >= {
        ("fgsm eps=0.1 · torch.onnx (dynamo)", m) for m in TRANSFER_METRICS}
    for row in transfer:
        assert row["status"] == "ok" and 0.0 <= row["value"] <= 1.0
    robust = {r["variant"]: r["value"] for r in rows if r["metric"] == "robust_accuracy"}
    assert robust["fgsm eps=0.2"] <= robust["fgsm eps=0.1"]


def test_stored_sets_recompute_the_recorded_figures_with_numpy(study):
    out, _summary, rows = study
    store = ArtifactStore(out / "artifacts")
    checked = 0
    for row in rows:
        if row["kind"] == "attack" and row["metric"] == "attack_success_rate":
            adversarial = AdversarialSet.load(store.path(row["artifact"]))
            assert adversarial.variant == row["variant"] and len(adversarial) == 30
            assert adversarial.images.dtype == np.float32 and adversarial.images.shape[1:] == (28, 28, 1)
            figures = attack_figures(adversarial.clean_float, adversarial.images, adversarial.labels,
                                     adversarial.clean_predictions, adversarial.source_predictions)
            assert figures.success_rate == pytest.approx(row["value"])
            checked += 1
    assert checked == 3


def test_the_report_has_a_robustness_section(study):
    _out, summary, rows = study
    document = build_document({"id": summary.run_id, "name": "tiny-robustness"}, rows)
    section = document.section("robustness")
    tables = {t.id: t for t in section.tables}
    assert list(tables)[:2] == ["attacks", "transfer"]
    assert [c.id for c in section.charts] == ["robust-accuracy-fgsm"]
    assert "FGSM at ε = " in section.answer
    curve = section.charts[0].figure["data"][0]
    assert curve["x"] == [0.0, 0.1, 0.2] and curve["y"][0] >= curve["y"][-1]
    (summary,) = tables["transfer"].rows  # PyTorch -> ONNX Runtime, over fgsm 0.1, 0.2 and deepfool
    assert summary["sets"].sort == 3 and summary["target"].text == "ONNX Runtime"
    # a set ONNX Runtime labels differently from PyTorch (a finding, not an error) is listed on its own
    assert summary["differing"].sort == len(tables["transfer-sets"].rows if "transfer-sets" in tables else [])
    # attack rows are this section's alone: not cells of the accuracy table, not "other measurements"
    cells = document.section("deployment").tables[0].records()
    assert cells and not any(r["converter path"].startswith(("fgsm", "deepfool")) for r in cells)
    others = [t.records() for s in document.sections if s.id == "other" for t in s.tables]
    assert not any(r["metric"] in ATTACK_METRICS | TRANSFER_METRICS for records in others for r in records)


def test_export_adversarial_writes_reusable_npz_files_and_a_manifest(study, tmp_path):
    out, summary, _rows = study
    target = tmp_path / "sets"
    result = subprocess.run([sys.executable, "-m", "dlcompat.cli", "export-adversarial", summary.run_id, "--out",
                             str(out), "--output", str(target)], capture_output=True, text=True, timeout=300,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    with open(target / "manifest.csv", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert sorted(m["variant"] for m in manifest) == ["deepfool overshoot=0.02", "fgsm eps=0.1", "fgsm eps=0.2"]
    first = next(m for m in manifest if m["variant"] == "fgsm eps=0.1")
    assert first["file"] == "digits_lenet1_pytorch_seed0_fgsm-eps0.1.npz"
    with np.load(target / first["file"], allow_pickle=False) as data:
        assert data["images"].shape == (30, 28, 28, 1) and data["labels"].shape == (30,)
        assert float(first["attack_success_rate"]) == pytest.approx(
            ((data["clean_predictions"] == data["labels"]) & (data["source_predictions"] != data["labels"])).sum()
            / (data["clean_predictions"] == data["labels"]).sum())


def test_export_adversarial_without_a_run_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dlcompat.cli", "export-adversarial", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no results database" in result.stderr
