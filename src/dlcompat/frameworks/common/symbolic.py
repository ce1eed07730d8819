"""Graph pieces the two symbolic frameworks, Theano and PyTensor, share: written once over their tensor module.

Both build a graph of the spec over shared variables in the canonical layout (NCHW) and compile it
into functions. What they compute the same way lives here, with the tensor module (`theano.tensor`
or `pytensor.tensor`) as the first argument: the activations, batch normalisation (torch's: biased
batch variance to normalise), the mean cross-entropy and the picked logits (labels picked by a one-hot
mask, elementwise C code, whose gradient neither framework runs in Python), and torch.optim.SGD's
update. The host side is here too: NHWC images in, NHWC gradients out. NumPy only at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.frameworks.base import Unavailable

FLOAT = "float32"


def nchw(x: np.ndarray) -> np.ndarray:
    """float32 NHWC images -> contiguous float32 NCHW, the layout every compiled function takes."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2))


def nhwc(grad: np.ndarray) -> np.ndarray:
    """A compiled function's NCHW input gradient -> contiguous float32 NHWC, the layout of the images."""
    return np.ascontiguousarray(np.asarray(grad, dtype=np.float32).transpose(0, 2, 3, 1))


def activation(tensor: Any, fn: str, x: Any) -> Any:
    """The spec's activation `fn` of `x`."""
    if fn == "relu":
        return tensor.switch(x > 0, x, np.float32(0.0))  # gradient 0 at 0, as torch.relu
    if fn == "tanh":
        return tensor.tanh(x)
    if fn == "sigmoid":
        sigmoid = getattr(tensor, "sigmoid", None) or tensor.nnet.sigmoid  # Theano 1.0.5 keeps it in nnet
        return sigmoid(x)
    raise Unavailable(f"no activation {fn!r} in the symbolic graph (relu, tanh, sigmoid)")


def batch_norm(tensor: Any, x: Any, weights: tuple[Any, Any, Any, Any], eps: float, training: bool,
               square: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
    """Batch norm of `x` (N, C, H, W) or (N, F) with (gamma, beta, running mean, running var):
    (output, batch mean, biased batch variance), the batch moments None outside training.

    Training normalises with the batch's biased variance, as torch does. `square` is how the framework
    squares the centred batch (Theano's `sqr`, PyTensor's product): the two differentiate into graphs that
    round differently, and each framework keeps its own. How the running statistics follow the batch is
    the caller's too (each framework's own expression of torch's update).
    """
    gamma, beta, mean, var = weights
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    pattern = ("x", 0, "x", "x") if x.ndim == 4 else ("x", 0)
    eps32 = np.float32(eps)
    batch_mean = batch_var = None
    if training:
        batch_mean = x.mean(axis=axes)
        centred = x - batch_mean.dimshuffle(*pattern)
        batch_var = square(centred).mean(axis=axes)
        normed = centred / tensor.sqrt(batch_var + eps32).dimshuffle(*pattern)
    else:
        normed = (x - mean.dimshuffle(*pattern)) / tensor.sqrt(var + eps32).dimshuffle(*pattern)
    return normed * gamma.dimshuffle(*pattern) + beta.dimshuffle(*pattern), batch_mean, batch_var


def one_hot(tensor: Any, labels: Any, classes: int) -> Any:
    """(N, classes) float32 mask of int64 `labels`: elementwise, so its gradient path is C code."""
    return tensor.cast(tensor.eq(labels.dimshuffle(0, "x"), tensor.arange(classes).dimshuffle("x", 0)), FLOAT)


def mean_cross_entropy(tensor: Any, logits: Any, labels: Any, classes: int,
                       stop_gradient: Callable[[Any], Any]) -> Any:
    """Mean softmax cross-entropy of int64 `labels` (torch.nn.CrossEntropyLoss), through a log-softmax written
    out (shifted by the row maximum, which `stop_gradient` keeps out of the gradient)."""
    shifted = logits - stop_gradient(logits.max(axis=1, keepdims=True))
    log_probs = shifted - tensor.log(tensor.exp(shifted).sum(axis=1, keepdims=True))
    return -(log_probs * one_hot(tensor, labels, classes)).sum(axis=1).mean()


def picked_logits(tensor: Any, logits: Any, labels: Any, classes: int) -> Any:
    """The sum over the batch of each input's logit of its label. In evaluation mode the inputs are
    independent, so its gradient is each input's own class gradient."""
    return (logits * one_hot(tensor, labels, classes)).sum()


def sgd_updates(params: list[Any], grads: list[Any], buffers: list[Any], lr: Any, momentum: Any,
                weight_decay: Any) -> list[tuple[Any, Any]]:
    """torch.optim.SGD's step as (variable, new value) pairs: ``g += wd * w; v = m * v + g; w -= lr * v``
    (torch starts the buffer at the first gradient: the same from a zero buffer)."""
    updates: list[tuple[Any, Any]] = []
    for param, grad, buffer in zip(params, grads, buffers, strict=True):
        new_buffer = momentum * buffer + (grad + weight_decay * param)
        updates += [(buffer, new_buffer), (param, param - lr * new_buffer)]
    return updates
