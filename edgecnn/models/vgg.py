"""VGG 11/13/16/19 with and without BatchNorm (Simonyan & Zisserman 2015)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import init_weights
from .registry import register_model

# Table 1 of the paper: conv widths per configuration, "M" = 2×2 max-pool.
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # VGG19
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
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # N×512×7×7
        return self.classifier(torch.flatten(x, 1))


_PAPER = "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015"
# name, config, batch_norm, params, GFLOPs (torchvision's figures)
_VARIANTS = [
    ("vgg11", "A", False, 132_863_336, 7.609), ("vgg11_bn", "A", True, 132_868_840, 7.609),
    ("vgg13", "B", False, 133_047_848, 11.308), ("vgg13_bn", "B", True, 133_053_736, 11.308),
    ("vgg16", "D", False, 138_357_544, 15.47), ("vgg16_bn", "D", True, 138_365_992, 15.47),
    ("vgg19", "E", False, 143_667_240, 19.632), ("vgg19_bn", "E", True, 143_678_248, 19.632),
]

for _name, _cfg, _bn, _params, _gflops in _VARIANTS:

    def _builder(num_classes: int = 1000, dropout: float = 0.5, _cfg=_cfg, _bn=_bn) -> VGG:
        return VGG(_cfg, _bn, num_classes, dropout)

    register_model(
        name=_name, family="vgg", task="classification", input_size=(224, 224), min_input_size=(32, 32),
        num_classes=1000, num_params=_params, gflops=_gflops, reference=_name, paper=_PAPER,
        aliases=("vgg",) if _name == "vgg16" else (),
    )(_builder)
