"""MobileNet v1 (Howard et al. 2017), v2 (Sandler et al. 2018) and v3 small/large (Howard et al. 2019).

v2 and v3 follow torchvision's module layout, so their published checkpoints load as they are.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .blocks import ConvBNAct, SqueezeExcite, init_weights, make_divisible

# ----------------------------------------------------------------------------- v1


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise conv → 1×1 pointwise conv, each with BN + ReLU (v1's only block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(ConvBNAct(in_ch, in_ch, 3, stride, groups=in_ch), ConvBNAct(in_ch, out_ch, 1))


# Table 1 of the v1 paper after the first conv: (output channels, stride) of each separable block.
V1_TABLE = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.001) -> None:
        super().__init__()
        width = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        layers: list[nn.Module] = [ConvBNAct(3, width(32), 3, 2)]
        in_ch = width(32)
        for out, stride in V1_TABLE:
            layers.append(DepthwiseSeparable(in_ch, width(out), stride))
            in_ch = width(out)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------- v2


def float_stem(strides: list) -> tuple:
    """The names of ``features``' layers up to stride 4, given each layer's stride: the stem and the high-resolution
    blocks, whose int8 XNNPACK runs slower than their fp32 and which round worst. An int8 .tflite/.pte export offers
    them in float as one form and times it where the file runs (convert/targets/pt2e.py, docs/TARGETS.md)."""
    return tuple(f"features.{i}" for i in range(len(strides)) if math.prod(strides[: i + 1]) <= 4)


class InvertedResidual(nn.Module):
    """v2 block: 1×1 expand (skipped when t=1) → 3×3 depthwise → 1×1 linear projection, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_ch, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# Table 2 of the v2 paper: expansion t, output channels c, repeats n, first stride s.
V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        last_ch = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU6)]
        strides = [2]
        for t, c, n, s in V2_TABLE:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                strides.append(s if i == 0 else 1)
                layers.append(InvertedResidual(in_ch, out_ch, strides[-1], t))
                in_ch = out_ch
        layers.append(ConvBNAct(in_ch, last_ch, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.float_stem = float_stem(strides)  # features.0–3
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_ch, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------- v3


class Bneck(NamedTuple):
    """One row of Tables 1/2 of the v3 paper."""

    in_ch: int
    kernel: int
    expanded: int
    out_ch: int
    se: bool
    act: str  # "RE" ReLU, "HS" hard-swish
    stride: int


V3_LARGE = [  # Table 1
    Bneck(16, 3, 16, 16, False, "RE", 1),
    Bneck(16, 3, 64, 24, False, "RE", 2),
    Bneck(24, 3, 72, 24, False, "RE", 1),
    Bneck(24, 5, 72, 40, True, "RE", 2),
    Bneck(40, 5, 120, 40, True, "RE", 1),
    Bneck(40, 5, 120, 40, True, "RE", 1),
    Bneck(40, 3, 240, 80, False, "HS", 2),
    Bneck(80, 3, 200, 80, False, "HS", 1),
    Bneck(80, 3, 184, 80, False, "HS", 1),
    Bneck(80, 3, 184, 80, False, "HS", 1),
    Bneck(80, 3, 480, 112, True, "HS", 1),
    Bneck(112, 3, 672, 112, True, "HS", 1),
    Bneck(112, 5, 672, 160, True, "HS", 2),
    Bneck(160, 5, 960, 160, True, "HS", 1),
    Bneck(160, 5, 960, 160, True, "HS", 1),
]
V3_SMALL = [  # Table 2
    Bneck(16, 3, 16, 16, True, "RE", 2),
    Bneck(16, 3, 72, 24, False, "RE", 2),
    Bneck(24, 3, 88, 24, False, "RE", 1),
    Bneck(24, 5, 96, 40, True, "HS", 2),
    Bneck(40, 5, 240, 40, True, "HS", 1),
    Bneck(40, 5, 240, 40, True, "HS", 1),
    Bneck(40, 5, 120, 48, True, "HS", 1),
    Bneck(48, 5, 144, 48, True, "HS", 1),
    Bneck(48, 5, 288, 96, True, "HS", 2),
    Bneck(96, 5, 576, 96, True, "HS", 1),
    Bneck(96, 5, 576, 96, True, "HS", 1),
]
_ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}
_BN = {"bn_eps": 0.001, "bn_momentum": 0.01}  # the v3 training recipe's BN settings


class InvertedResidualV3(nn.Module):
    """v3 block: expand → depthwise → optional squeeze-excite → linear projection."""

    def __init__(self, cfg: Bneck, width_mult: float = 1.0) -> None:
        super().__init__()
        in_ch, exp, out_ch = (make_divisible(c * width_mult) for c in (cfg.in_ch, cfg.expanded, cfg.out_ch))
        act = _ACTS[cfg.act]
        self.use_res_connect = cfg.stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if exp != in_ch:
            layers.append(ConvBNAct(in_ch, exp, 1, act=act, **_BN))
        layers.append(ConvBNAct(exp, exp, cfg.kernel, cfg.stride, groups=exp, act=act, **_BN))
        if cfg.se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4, 8)))
        layers.append(ConvBNAct(exp, out_ch, 1, act=None, **_BN))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    def __init__(
        self, table: list, last_channel: int, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        first = make_divisible(table[0].in_ch * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, first, 3, 2, act=nn.Hardswish, **_BN)]
        layers += [InvertedResidualV3(cfg, width_mult) for cfg in table]
        last_in = make_divisible(table[-1].out_ch * width_mult)
        layers.append(ConvBNAct(last_in, 6 * last_in, 1, act=nn.Hardswish, **_BN))
        self.features = nn.Sequential(*layers)
        self.float_stem = float_stem([2] + [cfg.stride for cfg in table])  # Large: features.0–3, Small: 0–1
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(last_channel, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------- builders (specs: models/specs.py)


def mobilenet_v1(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.001) -> MobileNetV1:
    return MobileNetV1(num_classes, width_mult, dropout)


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes, width_mult, dropout)


def mobilenet_v3_small(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    return MobileNetV3(V3_SMALL, 1024, num_classes, width_mult, dropout)


def mobilenet_v3_large(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    return MobileNetV3(V3_LARGE, 1280, num_classes, width_mult, dropout)
