"""`dlcompat.frameworks.imported` on real files: each format read right, loaders compute the original, every bad
file refused with one sentence that says what to do, and nothing in a hostile file unpickled or run."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcompat.errors import ModelFileError
from dlcompat.frameworks.imported import inspect_model, load_keras, load_torch
from dlcompat.frameworks.pt2_archive import safe_expression
from tests.check.conftest import ModelFiles
from tests.test_hostile_files import Payload, add_bomb

EXPORT = "torch.export.save(torch.export.export(model.eval(), (example,)), \"model.pt2\")"


def _refused(path: Path, *needles: str, **kwargs: Any) -> str:
    with pytest.raises(ModelFileError) as info:
        inspect_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and ": " in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize(("attr", "fmt", "kind", "layout", "name"), [
    ("keras", "tensorflow", "keras", "NHWC", "tiny_cifar"),
    ("tflite", "tflite", "tflite", "NHWC", "tiny"),
    ("pt2", "pytorch", "torch.export", "NCHW", "tiny"),
    ("onnx", "onnx", "onnx", "NCHW", "tiny"),
])
def test_each_format_is_read_from_the_model(model_files: ModelFiles, attr: str, fmt: str, kind: str, layout: str,
                                            name: str) -> None:
    model = inspect_model(getattr(model_files, attr))
    assert (model.format, model.kind, model.input_layout, model.layout_from) == (fmt, kind, layout, "model")
    assert (model.input_shape, model.num_classes, model.dynamic_batch, model.name) == ((32, 32, 3), 10, True, name)
    assert len(model.sha256) == 64 and model.facts
    if kind == "onnx":
        assert model.facts["producer"] == "pytorch" and model.facts["opset"] >= 17
        assert model.facts["parameters"] == sum(p.numel() for p in model_files.torch_model.parameters())
    if kind == "keras":
        assert model.facts["parameters"] == model_files.keras_model.count_params()


def test_torchscript_takes_its_size_from_the_images_and_its_layout_from_running(model_files: ModelFiles) -> None:
    _refused(model_files.torchscript, "TorchScript", "does not record", EXPORT)
    model = inspect_model(model_files.torchscript, shape=(32, 32, 3))
    assert (model.format, model.kind, model.input_layout, model.layout_from) == ("pytorch", "torchscript", "NCHW",
                                                                                "probe")
    assert (model.input_shape, model.num_classes, model.dynamic_batch) == ((32, 32, 3), 10, True)
    assert inspect_model(model_files.torchscript, "NCHW", shape=(32, 32, 3)).layout_from == "argument"
    _refused(model_files.torchscript, "does not run on 28x28x1", shape=(28, 28, 1))


def test_loaders_compute_what_the_original_computes_on_cifar(model_files: ModelFiles, cifar) -> None:
    import torch

    x = cifar[0][:16].astype(np.float32) / 255.0
    keras_out = np.asarray(load_keras(model_files.keras)(x))
    np.testing.assert_array_equal(keras_out, np.asarray(model_files.keras_model(x)))
    nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.inference_mode():
        want = model_files.torch_model(nchw).numpy()
        for path in (model_files.pt2, model_files.torchscript):
            np.testing.assert_allclose(load_torch(path)(nchw).numpy(), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ModelFileError, match=r"not a \.keras file"):
        load_keras(model_files.onnx)
    with pytest.raises(ModelFileError, match="not a PyTorch model file"):
        load_torch(model_files.onnx)


def test_missing_empty_truncated_and_foreign_files(model_files: ModelFiles, tmp_path: Path) -> None:
    _refused(tmp_path / "none.onnx", "does not exist", "pass a model file")
    _refused(tmp_path, "is a folder")
    (tmp_path / "empty.tflite").write_bytes(b"")
    _refused(tmp_path / "empty.tflite", "is empty", "export the model again")
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n")
    _refused(tmp_path / "model.h5", "not .h5 ones", "export the model to one of them")
    shutil.copyfile(model_files.onnx, tmp_path / "onnx.tflite")
    _refused(tmp_path / "onnx.tflite", "TFL3", "convert the model again")
    for attr in ("onnx", "tflite", "keras", "pt2", "torchscript"):
        source: Path = getattr(model_files, attr)
        cut = tmp_path / f"cut_{source.name}"
        cut.write_bytes(source.read_bytes()[: source.stat().st_size * 2 // 3])
        message = _refused(cut, shape=(32, 32, 3))
        assert any(word in message for word in ("not a valid", "not a loadable", "not a readable", "corrupt")), \
            message
        assert "again" in message or EXPORT in message, message


def test_a_corrupt_member_and_a_zip_bomb_are_refused_before_keras_reads_them(model_files: ModelFiles,
                                                                              tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.keras"
    data = bytearray(model_files.keras.read_bytes())
    with zipfile.ZipFile(model_files.keras) as archive:
        info = archive.getinfo("model.weights.h5")
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # a byte of the stored member
    corrupt.write_bytes(bytes(data))
    _refused(corrupt, "model.weights.h5 fails its checksum")
    bomb = tmp_path / "bomb.keras"
    add_bomb(model_files.keras, bomb, "assets/bomb.bin")
    _refused(bomb, "is refused", "GiB")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".bin"])
def test_pickles_are_refused_unread_with_the_pt2_export_line(model_files: ModelFiles, tmp_path: Path,
                                                             suffix: str) -> None:
    import torch

    marker = tmp_path / "unpickled"
    plain = tmp_path / f"plain{suffix}"
    plain.write_bytes(pickle.dumps(Payload(marker)))
    zipped = tmp_path / f"zipped{suffix}"
    torch.save({"payload": Payload(marker), "weights": model_files.torch_model.state_dict()}, zipped)
    for path in (plain, zipped):
        _refused(path, "pickle", "never unpickles", EXPORT)
        with pytest.raises(ModelFileError, match="never unpickles"):
            load_torch(path)
    assert not marker.exists()
    raw = tmp_path / f"raw{suffix}"
    raw.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    _refused(raw, "not a TorchScript archive", "never unpickles", EXPORT)


def test_keras_lambda_and_custom_layers_are_refused_by_name(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((8, 8, 3))
    flat = keras.layers.Flatten()
    lam = keras.Model(inputs, keras.layers.Dense(2)(flat(keras.layers.Lambda(lambda t: t * 2, name="double")(inputs))))
    lam.save(tmp_path / "lambda.keras")
    _refused(tmp_path / "lambda.keras", "Lambda layer 'double'", "safe mode", "standard Keras layers")

    @keras.saving.register_keras_serializable(package="userpkg")
    class Triple(keras.layers.Layer):
        def call(self, t: Any) -> Any:
            return t * 3

    custom = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(Triple(name="triple")(inputs))))
    custom.save(tmp_path / "custom.keras")
    _refused(tmp_path / "custom.keras", "custom layer userpkg>Triple ('triple')")  # registered in this process
    keras.saving.get_custom_objects().pop("userpkg>Triple")
    _refused(tmp_path / "custom.keras", "custom layer userpkg>Triple ('triple')", "export it to ONNX")
    with pytest.raises(ModelFileError, match="Lambda layer 'double'"):
        load_keras(tmp_path / "lambda.keras")


def _torch_onnx(module: Any, example: Any, path: Path, **kwargs: Any) -> Path:
    import torch

    torch.onnx.export(module.eval(), example, str(path), dynamo=False, **kwargs)
    return path


def test_layout_is_asked_for_only_where_the_model_cannot_say(model_files: ModelFiles, tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(), torch.nn.Linear(36, 5))
    square = _torch_onnx(conv, (torch.zeros(1, 3, 3, 3),), tmp_path / "square.onnx")  # axes 1 and 3 both 3
    _refused(square, "cannot be read from its shape (1, 3, 3, 3)", "pass --layout NCHW or --layout NHWC")
    model = inspect_model(square, "NCHW")
    assert (model.input_layout, model.layout_from, model.input_shape, model.num_classes, model.dynamic_batch) == \
        ("NCHW", "argument", (3, 3, 3), 5, False)
    _refused(model_files.keras, "takes NHWC input", "drop --layout NCHW", layout="NCHW")
    _refused(model_files.onnx, "takes NCHW input", "drop --layout NHWC", layout="NHWC")
    _refused(model_files.onnx, "neither NCHW nor NHWC", layout="CHW")
    script = tmp_path / "square_script.pt"
    torch.jit.trace(conv.eval(), torch.zeros(1, 3, 3, 3)).save(str(script))
    _refused(script, "runs on 3x3x3 images in both layouts", "pass --layout", shape=(3, 3, 3))


def test_inputs_and_outputs_other_than_one_image_batch_and_one_logit_vector(tmp_path: Path) -> None:
    import torch

    class TwoHeads(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x.mean((2, 3)), x.amax((2, 3))

    heads = _torch_onnx(TwoHeads(), (torch.zeros(1, 3, 8, 8),), tmp_path / "heads.onnx")
    _refused(heads, "1 input(s) and 2 output(s)", "one image input and one (N, classes) output")
    flat = _torch_onnx(torch.nn.Linear(12, 2), (torch.zeros(1, 12),), tmp_path / "flat.onnx")
    _refused(flat, "input has shape (1, 12)", "four axes")
    maps = _torch_onnx(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), tmp_path / "maps.onnx")
    _refused(maps, "output has shape (1, 2, 8, 8)", "not (N, classes)")
    free = _torch_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1),
                                           torch.nn.Flatten()), (torch.zeros(1, 3, 8, 8),), tmp_path / "free.onnx",
                       input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    _refused(free, "whose image size is not fixed", "export the model for one image size")


def _rewrite_pt2(source: Path, target: Path, edit: Any = None, members: dict[str, bytes] | None = None) -> Path:
    """A copy of the archive with its model.json passed through `edit` and `members` replaced or added."""
    members = dict(members or {})
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        root = old.namelist()[0].split("/", 1)[0]
        for info in old.infolist():
            relative = info.filename[len(root) + 1:]
            data = members.pop(relative, None) or old.read(info)
            if edit is not None and relative == "models/model.json":
                data = json.dumps(edit(json.loads(data))).encode()
            new.writestr(info, data)
        for name, data in members.items():
            new.writestr(f"{root}/{name}", data)
    return target


def test_a_pt2_that_torch_export_load_would_run_code_from_is_refused(model_files: ModelFiles,
                                                                    tmp_path: Path) -> None:
    import io

    import torch

    marker = tmp_path / "ran"
    command = f"__import__('os').system('touch {marker}')"

    def target(program: dict[str, Any]) -> dict[str, Any]:
        program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
        return program

    def expression(program: dict[str, Any]) -> dict[str, Any]:
        sizes = [size for value in program["graph_module"]["graph"]["tensor_values"].values()
                 for size in value["sizes"] if "as_expr" in size]
        sizes[0]["as_expr"]["expr_str"] = command
        return program

    def guard(program: dict[str, Any]) -> dict[str, Any]:
        program["guards_code"] = [command]
        return program

    pickled = io.BytesIO()
    torch.save((Payload(marker),), pickled)
    cases = [(target, {}, "calls 'torch.os.system'"),
             (expression, {}, "has the symbolic expression"),
             (guard, {}, "has the guard"),
             (None, {"data/aotinductor/model/model.so": b"\x7fELF"}, "holds data/aotinductor/model/model.so"),
             (None, {"data/sample_inputs/model.pt": pickled.getvalue()}, "holds sample inputs beyond tensors")]
    for number, (edit, members, needle) in enumerate(cases):
        path = _rewrite_pt2(model_files.pt2, tmp_path / f"case{number}.pt2", edit, members)
        _refused(path, needle, "would unpickle, evaluate or load as code", EXPORT)
        with pytest.raises(ModelFileError):
            load_torch(path)
    assert not marker.exists()
    assert safe_expression("Symbol('s77', positive=True, integer=True)") and safe_expression("2*s0 + FloorDiv(s1, 2)")
    assert not safe_expression(command) and not safe_expression("eval('1')") and not safe_expression("a;b")
