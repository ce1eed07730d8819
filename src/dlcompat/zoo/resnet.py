"""ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2): 3 stages of 3 basic blocks, 16/32/64 maps."""

from __future__ import annotations

from dlcompat.zoo.registry import register_model
from dlcompat.zoo.spec import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    GlobalAvgPool,
    Layer,
    ModelSpec,
    Residual,
)

HE_2016 = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016 (CIFAR-10 ResNet-20: 0.27M params)"


def _block(name: str, channels: int, stride: int, project: bool) -> Residual:
    body: tuple[Layer, ...] = (
        Conv2D(f"{name}.conv1", channels, 3, stride=stride, padding=1, bias=False),
        BatchNorm(f"{name}.bn1"),
        Activation(f"{name}.relu1"),
        Conv2D(f"{name}.conv2", channels, 3, padding=1, bias=False),
        BatchNorm(f"{name}.bn2"),
    )
    shortcut: tuple[Layer, ...] = ()
    if project:
        shortcut = (
            Conv2D(f"{name}.proj", channels, 1, stride=stride, bias=False),
            BatchNorm(f"{name}.proj_bn"),
        )
    return Residual(name, body, shortcut)


def resnet(depth: int, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    n = (depth - 2) // 6
    layers: list[Layer] = [Conv2D("stem", 16, 3, padding=1, bias=False), BatchNorm("stem_bn"), Activation("stem_relu")]
    for stage, channels in enumerate((16, 32, 64), start=1):
        for i in range(n):
            first = i == 0 and stage > 1
            layers.append(_block(f"s{stage}b{i + 1}", channels, 2 if first else 1, project=first))
    layers += [GlobalAvgPool("gap"), Dense("fc", num_classes)]
    return ModelSpec(
        name=f"resnet{depth}",
        input_shape=input_shape,
        num_classes=num_classes,
        layers=tuple(layers),
        reference=HE_2016,
        notes="Down-sampling blocks use a 1x1 projection shortcut (option B) instead of zero-padding "
        "(option A): the form every framework can express with standard layers. That adds 2,752 "
        "parameters to the paper's 269,722 (272,474 trainable in all; the paper rounds to 0.27M).",
    )


@register_model("resnet20", "ResNet-20 (CIFAR): 19 conv + 1 dense, 0.27M parameters", HE_2016)
def resnet20(input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    return resnet(20, input_shape, num_classes)
