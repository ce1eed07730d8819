"""VGG-16, CIFAR variant: the 13 conv layers of Simonyan & Zisserman with batch norm, one dense classifier."""

from __future__ import annotations

from dlcompat.zoo.registry import register_model
from dlcompat.zoo.spec import Activation, BatchNorm, Conv2D, Dense, Flatten, Layer, MaxPool, ModelSpec

VGG_REF = (
    "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015; CIFAR variant with batch norm and "
    "a single 512->10 classifier as in kuangliu/pytorch-cifar (14.7M params)"
)
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@register_model("vgg16", "VGG-16 (CIFAR variant, batch norm): 13 conv + 1 dense, 14.7M parameters", VGG_REF)
def vgg16(input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    layers: list[Layer] = []
    conv = pool = 0
    for item in _VGG16:
        if item == "M":
            pool += 1
            layers.append(MaxPool(f"pool{pool}", 2))
        else:
            conv += 1
            layers += [Conv2D(f"conv{conv}", int(item), 3, padding=1), BatchNorm(f"bn{conv}"),
                       Activation(f"relu{conv}")]
    layers += [Flatten("flatten"), Dense("fc", num_classes)]
    return ModelSpec(
        name="vgg16",
        input_shape=input_shape,
        num_classes=num_classes,
        layers=tuple(layers),
        reference=VGG_REF,
        notes="Built for 32x32 inputs: five 2x2 poolings leave 1x1x512 before the classifier.",
    )
