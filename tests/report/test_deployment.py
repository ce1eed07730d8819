"""The Deployment section: per model, size against accuracy and label flips for each mobile precision.

Rows shaped as the study writes them (see conftest.py): Keras to LiteRT in fp32 and int8-full (run and
compared), and PyTorch to Core ML in fp32 and fp16, converted (sizes recorded) but unavailable to run
on Linux.
"""

from __future__ import annotations

from dlcompat.report.build import write_report
from dlcompat.report.document import build_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.sections.deployment import (
    deployment_table,
    deployments,
    fp32_chain,
    hop_costs,
    precision_of,
    route_hops,
    size_ratios,
)

from .conftest import row
from .helpers import figures, markdown_tables

FP32, INT8 = "keras.tflite (fp32)", "keras.tflite (int8-full)"
COREML = "torch.coreml (fp32)", "torch.coreml (fp16)"
MACOS = "Core ML prediction needs macOS (Core ML is part of Apple's operating systems; this is Linux)"


def mobile_rows() -> list[dict]:
    out = []
    for variant, size, accuracy, flips in ((FP32, 251_308, 0.96, 0), (INT8, 73_088, 0.955, 4)):
        for kind, target, metric, value, unit in (
                ("convert", "tflite", "converted_size", size, "bytes"),
                ("evaluate", "litert", "accuracy", accuracy, "fraction"),
                ("evaluate", "litert", "model_size", size, "bytes"),
                ("evaluate", "litert", "latency_p50_per_image", 0.05, "ms"),
                ("compare", "litert", "label_flips", flips, "count"),
                ("compare", "litert", "label_flip_rate", flips / 360, "fraction")):
            item = row(metric, value, unit, model="lenet5", kind=kind, target=target, variant=variant)
            out.append({**item, "framework": "tensorflow"})
    for variant, size in zip(COREML, (261_423, 139_343), strict=True):
        out.append(row("converted_size", size, "bytes", model="lenet5", kind="convert", target="coreml",
                       variant=variant))
        out.append(row("evaluate", None, model="lenet5", kind="evaluate", target="coreml", variant=variant,
                       status="unavailable", error=MACOS))
    out.append({**row("unavailable", None, model="lenet5", kind="unavailable", target="executorch",
                      status="unavailable", error="no converter path from tensorflow to pte (needed by executorch)"),
                "framework": "tensorflow"})
    return out


RUNTIMES = {"litert": "tflite", "executorch": "pte", "coreml": "coreml"}


def test_chains_name_their_precision_and_fp32_reference():
    assert precision_of("torch.onnx (dynamo) → onnx2tf.tflite (int8-full)") == "int8-full"
    assert fp32_chain("torch.onnx (dynamo) → onnx2tf.tflite (fp16)") == "torch.onnx (dynamo) → onnx2tf.tflite (fp32)"


def test_deployments_join_evaluate_compare_and_convert_rows():
    items = {(d.runtime, d.chain): d for d in deployments(normalize_rows(mobile_rows()), RUNTIMES)}
    assert set(items) == {("litert", FP32), ("litert", INT8), ("coreml", COREML[0]), ("coreml", COREML[1]),
                          ("executorch", "")}
    int8 = items[("litert", INT8)]
    assert int8.problem is None and int8.value("label_flips") == 4 and int8.size == 73_088
    fp16 = items[("coreml", COREML[1])]
    assert fp16.problem["status"] == "unavailable" and fp16.size == 139_343  # from the convert job
    ratios = size_ratios(list(items.values()))
    assert round(ratios[int8.key], 3) == round(73_088 / 251_308, 3)
    assert round(ratios[fp16.key], 3) == round(139_343 / 261_423, 3)


def test_the_report_has_a_deployment_section_with_a_table_and_a_scatter(tmp_path, run, rows):
    document = build_document(run, [*rows, *mobile_rows()])
    section = document.section("deployment")
    records = {(r["runtime"], r["converter path"]): r for r in section.tables[0].records()}
    assert records[("LiteRT", INT8)]["size / fp32"] == "0.29×"
    assert records[("LiteRT", INT8)]["label flips"].startswith("4 (")
    assert records[("Core ML", COREML[1])]["status"] == "unavailable (run)"
    assert records[("Core ML", COREML[1])]["size / fp32"] == "0.53×"
    assert "Converted but not runnable here: Core ML." in section.answer
    assert "No converter path: TensorFlow → ExecuTorch." in section.answer and "0.29×" in section.answer
    figure = next(c.figure for c in section.charts if c.id == "deployment-digits-lenet5")
    mobile = [trace["text"] for trace in figure["data"] if "LiteRT" in trace["name"] or "Core ML" in trace["name"]]
    assert mobile == [["fp32", "int8-full"]]  # Core ML has no accuracy here
    html_path, markdown_path = write_report(run, [*rows, *mobile_rows()], tmp_path)
    assert "figure-deployment-digits-lenet5" in figures(html_path.read_text(encoding="utf-8"))
    assert any(any("keras.tflite (int8-full)" in cell for line in table for cell in line)
               for table in markdown_tables(markdown_path.read_text(encoding="utf-8")))


def test_a_run_without_deployments_says_what_to_configure(run, rows):
    section = build_document(run, [r for r in rows if r["target"] in ("pytorch", "")]).section("deployment")
    assert not section.has_data and "list runtimes in the study config" in section.answer


def test_web_deployments_by_backend_with_latency_bars_and_transfer(study_run, study_rows):
    section = build_document(study_run, study_rows).section("deployment")
    records = [r for r in section.tables[0].records() if r["runtime"] == "ONNX Runtime Web"]
    assert {(r["backend"], r["status"]) for r in records} == {("wasm", "ok"), ("wasm-threads", "ok"),
                                                              ("webgl", "failed (run)")}
    assert all(r["platform"] == "web" and r["converter path"] == "torch.onnx (dynamo)" for r in records)
    assert {r["model download (web)"] for r in records if r["status"] == "ok"} == {"0.048 s"}
    charts = {c.id: c.figure for c in section.charts}
    web = charts["latency-web"]["data"]
    assert {t["name"] for t in web} == {"ONNX Runtime Web · torch.onnx (dynamo) · wasm",
                                        "ONNX Runtime Web · torch.onnx (dynamo) · wasm-threads"}
    assert all(t["error_y"]["array"][0] > 0 for t in web)  # p10–p90 bars
    transfer = charts["transfer-deployed"]["data"]
    assert {t["name"] for t in transfer} == {"fgsm eps=0.05", "fgsm eps=0.1", "fgsm eps=0.2"}
    assert "Web (ONNX Runtime Web): 6 planned deployments, 4 run" in section.answer


def test_the_section_opens_with_one_sentence_per_platform_and_folds_the_answer(study_run, study_rows):
    section = build_document(study_run, study_rows).section("deployment")
    assert section.headline == ("Server: 2 of 2 deployments ran; 1 of the 2 compared changed labels. "
                                "Mobile: 4 of 4 deployments ran; 2 of the 4 compared changed labels. "
                                "Web: 4 of 6 deployments ran; none changed a label.")
    assert section.answer_detail == section.answer  # all of it, in the fold after the lead chart


def test_a_route_through_a_weight_transfer_notes_what_that_first_hop_cost():
    route = "weights → pytorch → torch.tflite (fp32)"
    rows = [{**row(metric, value, unit, model="lenet5", kind=kind, target="litert", variant=route),
             "framework": "theano"}
            for kind, metric, value, unit in (("evaluate", "accuracy", 0.97, "fraction"),
                                              ("compare", "label_flips", 1, "count"))]
    rows += [{**row(metric, value, unit, model="lenet5", kind="compare", target="pytorch",
                    variant="weight transfer"), "framework": "theano"}
             for metric, value, unit in (("label_flips", 0, "count"), ("max_abs_logit_diff", 2.4e-6, ""))]
    (moved,) = deployments(normalize_rows(rows))
    table = deployment_table([moved], hop_costs(normalize_rows(rows)))
    (cell,) = [r["path"] for r in table.rows]
    assert cell.text == route
    assert cell.note == ("against the trained model, after the weight transfer into PyTorch: 0 label flips, "
                         "max |Δ logit| 2.4e-6 (Migration)")
    alone = deployment_table([moved], hop_costs(normalize_rows(rows[:2])))
    assert "not measured alone" in alone.rows[0]["path"].note


def test_a_route_of_three_hops_notes_the_cost_after_each_hop_before_its_last():
    onnx = "weights → pytorch → torch.onnx (dynamo)"
    route = f"{onnx} → onnx2tf (fp32)"
    assert route_hops(route) == ["weights → pytorch", onnx, route]
    assert route_hops("torch.onnx (dynamo)") == ["torch.onnx (dynamo)"]

    def cell_rows(target, variant, flips, logits):
        return [{**row(metric, value, unit, model="lenet5", kind="compare", target=target, variant=variant),
                 "framework": "pytensor"}
                for metric, value, unit in (("label_flips", flips, "count"), ("max_abs_logit_diff", logits, ""))]

    rows = [*cell_rows("pytorch", "weight transfer", 0, 1e-6), *cell_rows("onnxruntime", onnx, 0, 3e-6),
            *cell_rows("ortweb", f"{onnx} · wasm", 5, 1.0),  # a browser's row is not a hop's measure
            *cell_rows("litert", route, 2, 0.25)]
    costs = hop_costs(normalize_rows(rows))
    assert costs[("digits", "lenet5", "pytensor", 0, onnx)] == ("0 label flips, max |Δ logit| 3e-6",
                                                               "its ONNX Runtime row")
    items = {d.runtime: d for d in deployments(normalize_rows(rows))}
    note = deployment_table([items["litert"]], costs).rows[0]["path"].note
    assert note == ("against the trained model, after the weight transfer into PyTorch: 0 label flips, "
                    "max |Δ logit| 1e-6 (Migration); after torch.onnx (dynamo): 0 label flips, max |Δ logit| 3e-6 "
                    "(its ONNX Runtime row)")
    without_ort = deployment_table([items["litert"]], hop_costs(normalize_rows(rows[:2] + rows[4:])))
    assert "after torch.onnx (dynamo): not measured alone" in without_ort.rows[0]["path"].note
