"""LeNet-1 and LeNet-5, as used by Guo et al. (2018) and DeepXplore: ReLU and max pooling."""

from __future__ import annotations

from dlcompat.zoo.registry import register_model
from dlcompat.zoo.spec import Activation, Conv2D, Dense, Flatten, MaxPool, ModelSpec

LECUN_1998 = "LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998"


@register_model("lenet1", "LeNet-1: 2 conv (4, 12 maps) + 1 dense; 3,246 parameters on 28x28x1", LECUN_1998)
def lenet1(input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    return ModelSpec(
        name="lenet1",
        input_shape=input_shape,
        num_classes=num_classes,
        layers=(
            Conv2D("conv1", 4, 5),
            Activation("relu1"),
            MaxPool("pool1", 2),
            Conv2D("conv2", 12, 5),
            Activation("relu2"),
            MaxPool("pool2", 2),
            Flatten("flatten"),
            Dense("fc", num_classes),
        ),
        reference=LECUN_1998,
        notes="The Keras LeNet-1 of DeepXplore (Pei et al. 2017) that Guo et al. trained: ReLU + max pooling "
        "instead of the original tanh + average pooling.",
    )


@register_model("lenet5", "LeNet-5: 2 conv (6, 16 maps) + 3 dense; 61,706 parameters on 28x28x1", LECUN_1998)
def lenet5(input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    return ModelSpec(
        name="lenet5",
        input_shape=input_shape,
        num_classes=num_classes,
        layers=(
            Conv2D("conv1", 6, 5, padding=2),
            Activation("relu1"),
            MaxPool("pool1", 2),
            Conv2D("conv2", 16, 5),
            Activation("relu2"),
            MaxPool("pool2", 2),
            Flatten("flatten"),
            Dense("fc1", 120),
            Activation("relu3"),
            Dense("fc2", 84),
            Activation("relu4"),
            Dense("fc3", num_classes),
        ),
        reference=LECUN_1998,
        notes="28x28 input padded by 2 (equivalent to LeNet-5's 32x32 input); ReLU + max pooling as in "
        "DeepXplore's Keras LeNet-5. 61,706 parameters, the figure commonly quoted for LeNet-5.",
    )
