"""Canary cases: small ONNX graphs of the operators users report as fragile in converters and runtimes, written as a
`canary` suite in ONNX's backend-test layout so that the conformance run (`findings/conformance.py`) puts them
through every ONNX-consuming route beside ONNX's own cases, and their failures feed the same reducer and reproducers.

The fragile operators, each as reported in the tools' issue trackers: transposes of other than 4 dimensions, a
dynamic (symbolic) batch dimension, depthwise and grouped convolution, ReLU6 (Clip 0..6, alone and after a Conv),
padding modes (reflect and edge Pad, asymmetric pads of Pad, Conv and pooling, auto_pad SAME_UPPER / SAME_LOWER)
and global pooling (GlobalAveragePool, GlobalMaxPool, ReduceMean over H and W). They live here, in the conformance
suite, not in the zoo: the zoo's layer vocabulary has no groups and no ReLU6, and a canary is one operator.

Expected outputs: ONNX's reference evaluator (`onnx.reference.ReferenceEvaluator`) on a float64 copy of the model
(its weights and inputs widened exactly), cast to float32, so that they carry no runtime's float32 rounding. Inputs
and weights are seeded normal draws; every graph is opset 13 (the routes' common ground).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SUITE = "canary"
OPSET = 13
SEED = 19

#: a canary: (nodes, inputs as (name, shape with str for a symbolic dimension, fed shape), outputs, initializers)
Spec = tuple[list[Any], list[tuple[str, list[int | str], list[int]]], list[str], dict[str, np.ndarray]]


def _node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> Any:
    from onnx import helper

    return helper.make_node(op, inputs, outputs, **attrs)


def _weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _transposes(rng: np.random.Generator) -> dict[str, Spec]:
    cases: dict[str, Spec] = {}
    for shape, perm in (([3, 5], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([1, 2, 3, 4, 5], [0, 2, 4, 1, 3]),
                        ([2, 1, 3, 2, 2, 3], [0, 5, 1, 4, 2, 3])):
        cases[f"transpose_{len(shape)}d"] = ([_node("Transpose", ["x"], ["y"], perm=perm)], [("x", shape, shape)],
                                             ["y"], {})
    return cases


def _convolutions(rng: np.random.Generator) -> dict[str, Spec]:
    x = ("x", [1, 4, 7, 7], [1, 4, 7, 7])
    conv = {"depthwise_conv": ((4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
            "depthwise_conv_multiplier2": ((8, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
            "grouped_conv": ((6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
            "conv_asymmetric_pads": ((3, 4, 3, 3), {"pads": [0, 1, 2, 0]}),
            "conv_same_upper_stride2": ((3, 4, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
            "conv_same_lower_stride2": ((3, 4, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]})}
    cases: dict[str, Spec] = {}
    for name, (shape, attrs) in conv.items():
        cases[name] = ([_node("Conv", ["x", "w", "b"], ["y"], **attrs)], [x], ["y"],
                       {"w": _weights(rng, *shape), "b": rng.standard_normal(shape[0]).astype(np.float32)})
    cases["dynamic_batch_conv_flatten_gemm"] = (
        [_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), _node("Relu", ["c"], ["r"]),
         _node("Flatten", ["r"], ["f"]), _node("Gemm", ["f", "g"], ["y"])],
        [("x", ["N", 2, 4, 4], [3, 2, 4, 4])], ["y"], {"w": _weights(rng, 3, 2, 3, 3), "g": _weights(rng, 48, 5)})
    cases["dynamic_batch_reshape"] = (
        [_node("Reshape", ["x", "s"], ["r"]), _node("MatMul", ["r", "m"], ["y"])],
        [("x", ["N", 3, 2, 2], [2, 3, 2, 2])], ["y"], {"s": np.array([-1, 12], np.int64), "m": _weights(rng, 12, 4)})
    return cases


def _relu6(rng: np.random.Generator) -> dict[str, Spec]:
    bounds = {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    conv = _node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    return {
        "relu6_clip": ([_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", [2, 3, 4, 5], [2, 3, 4, 5])], ["y"], bounds),
        "relu6_after_conv": ([conv, _node("Clip", ["c", "lo", "hi"], ["y"])], [("x", [1, 3, 6, 6], [1, 3, 6, 6])],
                             ["y"], {**bounds, "w": _weights(rng, 4, 3, 3, 3) * 8}),
    }


def _padding(rng: np.random.Generator) -> dict[str, Spec]:
    x = ("x", [1, 2, 5, 6], [1, 2, 5, 6])
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    cases: dict[str, Spec] = {
        f"pad_{mode}": ([_node("Pad", ["x", "p"], ["y"], mode=mode)], [x], ["y"], {"p": pads})
        for mode in ("reflect", "edge")}
    cases["pad_constant_asymmetric"] = ([_node("Pad", ["x", "p", "v"], ["y"], mode="constant")], [x], ["y"],
                                        {"p": pads, "v": np.array(0.5, np.float32)})
    pool = {"maxpool_same_upper": ("MaxPool", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
            "avgpool_same_lower": ("AveragePool", {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
            "avgpool_asymmetric_pads": ("AveragePool", {"pads": [0, 1, 1, 0]}),
            "avgpool_asymmetric_pads_count_include_pad": ("AveragePool", {"pads": [0, 1, 1, 0],
                                                                           "count_include_pad": 1})}
    for name, (op, attrs) in pool.items():
        cases[name] = ([_node(op, ["x"], ["y"], kernel_shape=[3, 3], **attrs)], [x], ["y"], {})
    return cases


def _global_pooling(rng: np.random.Generator) -> dict[str, Spec]:
    x = ("x", [2, 3, 5, 4], [2, 3, 5, 4])
    return {
        "global_average_pool": ([_node("GlobalAveragePool", ["x"], ["y"])], [x], ["y"], {}),
        "global_max_pool": ([_node("GlobalMaxPool", ["x"], ["y"])], [x], ["y"], {}),
        "reduce_mean_hw": ([_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)], [x], ["y"], {}),
        "global_average_pool_flatten": ([_node("GlobalAveragePool", ["x"], ["g"]), _node("Flatten", ["g"], ["y"])],
                                        [x], ["y"], {}),
    }


GROUPS: tuple[Callable[[np.random.Generator], dict[str, Spec]], ...] = (
    _transposes, _convolutions, _relu6, _padding, _global_pooling)


def _model(name: str, spec: Spec, dtype: type) -> Any:
    """The canary as a model whose float tensors are `dtype` (float32 as deployed, float64 for the reference)."""
    from onnx import helper

    nodes, inputs, outputs, weights = spec
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    initializers = [helper.make_tensor(k, helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype) if v.dtype == np.float32 else v.dtype), v.shape,
        (v.astype(dtype) if v.dtype == np.float32 else v).flatten().tolist()) for k, v in weights.items()]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, elem, dims) for n, dims, _ in inputs],
                              [helper.make_tensor_value_info(n, elem, None) for n in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dlcompat-canary")
    model.ir_version = 8
    return model


def canaries(seed: int = SEED) -> dict[str, tuple[Any, list[np.ndarray], list[np.ndarray]]]:
    """name -> (the float32 model, its inputs, its expected outputs: the float64 reference cast to float32)."""
    from onnx import shape_inference
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(seed)
    out = {}
    for group in GROUPS:
        for name, spec in group(rng).items():
            feeds = [(rng.standard_normal(fed) * 3).astype(np.float32) for _n, _dims, fed in spec[1]]
            wide = ReferenceEvaluator(_model(name, spec, np.float64))
            expected = wide.run(None, {n: x.astype(np.float64) for (n, _d, _f), x in zip(spec[1], feeds, strict=True)})
            model = shape_inference.infer_shapes(_model(name, spec, np.float32))
            out[name] = (model, feeds, [np.asarray(e).astype(np.float32) for e in expected])
    return out


def write_suite(root: Path, seed: int = SEED) -> Path:
    """The canaries as `root/canary/test_<name>/{model.onnx, test_data_set_0/{input,output}_<i>.pb}`; the suite's
    folder."""
    import onnx
    from onnx import numpy_helper

    suite = root / SUITE
    for name, (model, inputs, outputs) in canaries(seed).items():
        data = suite / f"test_{name}" / "test_data_set_0"
        data.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(data.parent / "model.onnx"))
        for stem, arrays in (("input", inputs), ("output", outputs)):
            for i, array in enumerate(arrays):
                (data / f"{stem}_{i}.pb").write_bytes(numpy_helper.from_array(array).SerializeToString())
    return suite
