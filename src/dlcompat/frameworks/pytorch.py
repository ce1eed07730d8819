"""PyTorch adapter: the zoo spec compiled into an `nn.Module`, trained with torch.optim, saved as a state dict."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.data.batching import augment_batch
from dlcompat.errors import ModelFileError
from dlcompat.frameworks.base import FrameworkAdapter, Progress, TrainHistory, TrainSettings, Unavailable
from dlcompat.frameworks.common.training import EpochLoop
from dlcompat.frameworks.common.weights import checked_weights
from dlcompat.frameworks.lr_schedule import describe_schedule
from dlcompat.zoo import spec as zs


def _torch() -> Any:
    import torch

    return torch


def _key(name: str) -> str:
    """nn.ModuleDict keys may not contain dots; canonical layer names may."""
    return name.replace(".", "__")


def _build_module(spec: zs.ModelSpec) -> Any:
    torch = _torch()
    nn = torch.nn
    functional = torch.nn.functional
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}

    class SpecModule(nn.Module):
        """Runs the spec's layers in order; `taps` collects named outputs when given."""

        def __init__(self) -> None:
            super().__init__()
            self.mods = nn.ModuleDict()
            shapes = spec.weight_shapes()  # every layer's sizes, inputs included, come from the spec
            for layer in spec.iter_layers():
                mod = self._make(layer, shapes)
                if mod is not None:
                    self.mods[_key(layer.name)] = mod

        @staticmethod
        def _make(layer: zs.Layer, shapes: dict[str, tuple[int, ...]]) -> Any:
            if isinstance(layer, zs.Conv2D):
                out, cin, k, _ = shapes[f"{layer.name}.weight"]
                return nn.Conv2d(cin, out, k, layer.stride, layer.padding, bias=layer.bias)
            if isinstance(layer, zs.BatchNorm):
                return nn.BatchNorm2d(shapes[f"{layer.name}.gamma"][0], eps=layer.eps, momentum=layer.momentum)
            if isinstance(layer, zs.Dense):
                units, features = shapes[f"{layer.name}.weight"]
                return nn.Linear(features, units, bias=layer.bias)
            if isinstance(layer, zs.Dropout):
                return nn.Dropout(layer.rate)
            return None

        def forward(self, x: Any, taps: dict[str, Any] | None = None) -> Any:
            return self._run(spec.layers, x, taps)

        def _run(self, layers: tuple[zs.Layer, ...], x: Any, taps: dict[str, Any] | None) -> Any:
            for layer in layers:
                x = self._layer(layer, x, taps)
                if taps is not None:
                    taps[layer.name] = x
            return x

        # not `_apply`: that is nn.Module's own hook behind .to(), .float() and .cuda(), which ART calls
        def _layer(self, layer: zs.Layer, x: Any, taps: dict[str, Any] | None) -> Any:
            if isinstance(layer, (zs.Conv2D, zs.BatchNorm, zs.Dense, zs.Dropout)):
                return self.mods[_key(layer.name)](x)
            if isinstance(layer, zs.Activation):
                return act[layer.fn](x)
            if isinstance(layer, zs.MaxPool):
                return functional.max_pool2d(x, layer.size, layer.stride or layer.size)
            if isinstance(layer, zs.AvgPool):
                return functional.avg_pool2d(x, layer.size, layer.stride or layer.size)
            if isinstance(layer, zs.GlobalAvgPool):
                return x.mean(dim=(2, 3))
            if isinstance(layer, zs.Flatten):
                return torch.flatten(x, 1)  # NCHW -> channel-major, the canonical order
            if isinstance(layer, zs.Residual):
                body = self._run(layer.body, x, taps)
                short = self._run(layer.shortcut, x, taps) if layer.shortcut else x
                return act[layer.activation](body + short)
            raise Unavailable(f"pytorch adapter has no layer {type(layer).__name__}")

    return SpecModule()


_PARAM_NAMES = {  # canonical param -> torch attribute
    "weight": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "mean": "running_mean",
    "var": "running_var",
}


def _lr_scheduler(opt: Any, settings: TrainSettings) -> Any:
    """torch's own scheduler for the settings' schedule, stepped once per epoch (None: a constant rate).

    `dlcompat.frameworks.lr_schedule` gives the same rates in closed form for the other frameworks."""
    torch = _torch()
    if settings.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(settings.lr_milestones),
                                                    gamma=settings.lr_gamma)
    if settings.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs, eta_min=0.0)
    describe_schedule(settings)  # raises on an unknown schedule
    return None


class _TorchLoop(EpochLoop):
    """torch.optim (and torch's own learning-rate scheduler) over the batches of the shared epoch loop."""

    def __init__(self, adapter: PyTorchAdapter, model: Any, train: tuple[np.ndarray, np.ndarray],
                 settings: TrainSettings) -> None:
        torch = _torch()
        self.adapter, self.model, self.settings = adapter, model, settings
        self.x_nchw = np.ascontiguousarray(train[0].transpose(0, 3, 1, 2))
        self.x_all = torch.from_numpy(self.x_nchw)
        self.y_all = torch.from_numpy(train[1].astype(np.int64))
        if settings.optimizer == "adam":
            self.opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        else:
            self.opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                       weight_decay=settings.weight_decay)
        self.scheduler = _lr_scheduler(self.opt, settings)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def begin_epoch(self, epoch: int) -> None:
        if epoch > 0 and self.scheduler is not None:
            self.scheduler.step()  # once per epoch, after the epoch before
        self.model.train()

    def learning_rate(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def step(self, epoch: int, number: int, indices: np.ndarray) -> float:
        torch = _torch()
        settings = self.settings
        index = torch.from_numpy(indices)
        if settings.augmentation == "none":
            xb = self.x_all[index]
        else:
            xb = torch.from_numpy(augment_batch(self.x_nchw[indices], settings.augmentation, seed=settings.seed,
                                                epoch=epoch, batch=number, layout="NCHW"))
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), self.y_all[index])
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)


def _imported_module(model: Any, spec: zs.ModelSpec) -> Any:
    """A loaded user model as the adapter and the converters use it. A `torch.export` program's module refuses
    `train()`/`eval()` (its mode is the one it was exported in): they become no-ops on it, which keeps that mode."""
    if isinstance(model, _torch().fx.GraphModule):
        model.train = lambda mode=True: model  # type: ignore[method-assign]
        model.eval = lambda: model  # type: ignore[method-assign]
    with contextlib.suppress(AttributeError, RuntimeError):  # a TorchScript module takes no new attributes
        model.spec = spec
    return model


class PyTorchAdapter(FrameworkAdapter):
    name = "pytorch"
    module = "torch"
    native_suffix = ".pt"
    predict_api = "model(x) under torch.inference_mode()"
    exports: ClassVar[dict[str, str]] = {"onnx": "torch.onnx.export (variants: dynamo, torchscript)"}

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        torch = _torch()
        torch.set_num_threads(threads)

    def version(self) -> str:
        return str(_torch().__version__)

    def threads_in_effect(self) -> dict[str, Any]:
        torch = _torch()
        return {"intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads()}

    # --- building and weights -------------------------------------------------------------------
    def build(self, spec: zs.ModelSpec, seed: int) -> Any:
        model = _build_module(spec)
        model.spec = spec
        self.set_weights(model, zs.init_weights(spec, seed))
        return model

    def _tensor_for(self, model: Any, name: str) -> Any:
        layer, param = name.rsplit(".", 1)
        return getattr(model.mods[_key(layer)], _PARAM_NAMES[param])

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        return {
            name: self._tensor_for(model, name).detach().cpu().numpy().astype(np.float32, copy=True)
            for name in model.spec.weight_shapes()
        }

    def set_weights(self, model: Any, weights: dict[str, np.ndarray]) -> None:
        torch = _torch()
        with torch.no_grad():
            for name, value in checked_weights(model.spec, weights).items():
                self._tensor_for(model, name).copy_(torch.from_numpy(value))

    # --- training ---------------------------------------------------------------------------------
    def train(
        self,
        model: Any,
        spec: zs.ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        torch = _torch()
        torch.manual_seed(settings.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        history = _TorchLoop(self, model, train, settings).run(len(train[1]), val, settings, progress)
        model.eval()
        return history

    # --- inference and gradients ------------------------------------------------------------------
    def predict(self, model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        torch = _torch()
        model.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size].transpose(0, 3, 1, 2)))
                out.append(model(xb).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.spec.num_classes), np.float32)

    def predictor(self, model: Any, x: np.ndarray) -> Callable[[], Any]:
        torch = _torch()
        model.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

        def forward() -> Any:
            with torch.inference_mode():
                return model(xt)

        return forward

    def loss_gradient(self, model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        torch = _torch()
        model.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xt), torch.from_numpy(y.astype(np.int64)))
        (grad,) = torch.autograd.grad(loss, xt)
        return grad.numpy().transpose(0, 2, 3, 1).copy()

    def class_gradient(self, model: Any, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        torch = _torch()
        model.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
        index = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1, 1))
        picked = model(xt).gather(1, index).sum()  # inputs are independent in eval mode: one backward pass
        (grad,) = torch.autograd.grad(picked, xt)
        return grad.numpy().transpose(0, 2, 3, 1).copy()

    def class_gradients(self, model: Any, x: np.ndarray, classes: int) -> np.ndarray:
        """Every class's gradient from one forward pass: one batched backward pass over the classes' one-hot
        cotangents (`torch.autograd.grad(..., is_grads_batched=True)`, vmapped)."""
        torch = _torch()
        model.eval()
        if len(x) == 0:
            return np.zeros((0, classes, *x.shape[1:]), np.float32)
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
        logits = model(xt)
        onehot = torch.eye(classes, dtype=logits.dtype)[:, None, :].expand(classes, *logits.shape)
        (grads,) = torch.autograd.grad(logits, xt, grad_outputs=onehot, is_grads_batched=True)
        return grads.numpy().transpose(1, 0, 3, 4, 2).copy()  # (classes, N, C, H, W) -> (N, classes, H, W, C)

    def activations(self, model: Any, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
        torch = _torch()
        model.eval()
        taps: dict[str, Any] = {}
        with torch.inference_mode():
            model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), taps)
        wanted = layers if layers is not None else list(taps)
        return {name: taps[name].numpy().copy() for name in wanted}

    # --- persistence and export -------------------------------------------------------------------
    def save(self, model: Any, path: Path) -> None:
        _torch().save(model.state_dict(), path)

    def load(self, spec: zs.ModelSpec, path: Path) -> Any:
        torch = _torch()
        if spec.imported:  # a user's .pt2 or TorchScript file (dlcompat check): the file is the model
            from dlcompat.frameworks.imported import load_torch

            return _imported_module(load_torch(path), spec)
        model = self.build(spec, seed=0)
        try:
            check_zip(path)  # a zip bomb is refused before torch reads a member
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # a foreign, corrupt or pickled-object file
            raise ModelFileError(
                f"{path} is not a PyTorch state dict of {spec.name} ({type(exc).__name__}): "
                "pass a file written by dlcompat or torch.save(model.state_dict())"
            ) from exc
        model.eval()
        return model

    def export(self, model: Any, spec: zs.ModelSpec, fmt: str, path: Path, variant: str = "dynamo") -> dict[str, Any]:
        if fmt != "onnx":
            raise Unavailable(f"pytorch adapter exports only onnx, not {fmt}")
        torch = _torch()
        model.eval()
        h, w, c = spec.input_shape
        example = (torch.zeros(2, c, h, w),)
        if variant == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(model, example, str(path), dynamo=True, external_data=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: batch},), opset_version=18, verbose=False)
        elif variant == "torchscript":
            torch.onnx.export(model, example, str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17)
        else:
            raise Unavailable(f"unknown torch.onnx exporter variant {variant!r} (dynamo, torchscript)")
        return {"tool": f"torch.onnx ({variant})", "tool_version": self.version(), "input_layout": "NCHW"}
