"""Multiply-accumulate counting, for the registry's GFLOPs column.

Like torchvision's published figures, "GFLOPs" here means 1e9 multiply-accumulates of the conv,
transposed-conv and linear layers for one image; element-wise ops, pooling and BN are not counted.
"""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a 1×C×H×W input."""
    total = 0

    def conv_hook(m: nn.Module, inputs, output) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        if isinstance(m, nn.ConvTranspose2d):  # every input pixel is spread over a k×k window
            total += inputs[0].numel() * (m.out_channels // m.groups) * kh * kw
        else:
            total += output.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Module, inputs, output) -> None:
        nonlocal total
        total += output.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, *input_size))
    finally:
        for h in handles:
            h.remove()
    return total


def gflops(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> float:
    return count_macs(model, input_size, in_channels) / 1e9
