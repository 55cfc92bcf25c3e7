"""VGG 11/13/16/19 with and without BatchNorm (Simonyan & Zisserman 2015)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import init_weights

# Table 1 of the paper: conv widths per configuration, "M" = 2×2 max-pool.
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG16
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],  # VGG19
}


def make_features(config: list, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_ch, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_ch = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, config: str, batch_norm: bool, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = make_features(CONFIGS[config], batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # N×512×7×7
        return self.classifier(torch.flatten(x, 1))


def _variant(config: str, batch_norm: bool):
    def build(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
        return VGG(config, batch_norm, num_classes, dropout)

    return build


# Table 1's configurations A, B, D, E (11, 13, 16, 19 weight layers), each without and with BatchNorm.
vgg11, vgg11_bn = _variant("A", False), _variant("A", True)
vgg13, vgg13_bn = _variant("B", False), _variant("B", True)
vgg16, vgg16_bn = _variant("D", False), _variant("D", True)
vgg19, vgg19_bn = _variant("E", False), _variant("E", True)
