"""U-Net (Ronneberger et al. 2015) in the layout of milesial/Pytorch-UNet, so its checkpoints load as they are.

Unlike Pytorch-UNet, forward never pads: H and W must be multiples of 16 (four 2× poolings), which keeps
shape arithmetic out of the exported graph; any other size is refused with a clear error.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import InputError


class DoubleConv(nn.Module):
    """(3×3 conv → BN → ReLU) × 2."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None) -> None:
        super().__init__()
        mid_ch = mid_ch or out_ch
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """2× max-pool, then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """2× upsampling (transposed conv, or bilinear), concatenation with the skip, then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, bilinear: bool) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_ch, out_ch, in_ch // 2)
        else:
            self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    size_multiple = 16

    def __init__(self, in_channels: int = 3, num_classes: int = 2, bilinear: bool = False) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.bilinear = in_channels, num_classes, bilinear
        factor = 2 if bilinear else 1  # bilinear upsampling keeps channels, so the bottleneck is halved
        self.inc = DoubleConv(in_channels, 64)
        self.down1, self.down2, self.down3 = Down(64, 128), Down(128, 256), Down(256, 512)
        self.down4 = Down(512, 1024 // factor)
        self.up1 = Up(1024, 512 // factor, bilinear)
        self.up2 = Up(512, 256 // factor, bilinear)
        self.up3 = Up(256, 128 // factor, bilinear)
        self.up4 = Up(128, 64, bilinear)
        self.outc = OutConv(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            h, w = x.shape[-2:]
            if h % 16 or w % 16:
                raise InputError(
                    f"U-Net needs height and width that are multiples of 16, got {h}x{w}; resize or pad the image first"
                )
        x1 = self.inc(x)  # N×64×H×W
        x2 = self.down1(x1)  # /2
        x3 = self.down2(x2)  # /4
        x4 = self.down3(x3)  # /8
        x5 = self.down4(x4)  # /16
        x = self.up4(self.up3(self.up2(self.up1(x5, x4), x3), x2), x1)
        return self.outc(x)  # N×classes×H×W


def unet(num_classes: int = 2, in_channels: int = 3, bilinear: bool = False) -> UNet:
    return UNet(in_channels, num_classes, bilinear)


def unet_bilinear(num_classes: int = 2, in_channels: int = 3) -> UNet:
    return UNet(in_channels, num_classes, bilinear=True)
