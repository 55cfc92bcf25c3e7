"""The PyTorch path of the preprocessing recipe: the same steps as ``edgecnn.runtime.preprocess``, in torch ops.

Used where torch is at hand (export parity, calibration, validation) and as the reference that the
torch-free ``edgecnn.runtime.preprocess`` is tested against. It follows torchvision's recipe without needing
torchvision: ``Resize(resize)`` (shorter side, antialiased bilinear) → ``CenterCrop(crop)`` →
``ToTensor`` → ``Normalize(mean, std)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.card import ModelCard
from ..runtime.preprocess import ImageLike, PreprocessParams, as_params, crop_origin, load_image, resized_size


def torch_preprocess(image: ImageLike, card_or_params: ModelCard | PreprocessParams) -> torch.Tensor:
    """Model input for one image as a float32 ``C×H×W`` tensor, computed with torch ops.

    Args:
        image: anything ``edgecnn.runtime.preprocess.load_image`` accepts (path, bytes, PIL image, uint8 array).
        card_or_params: the model's ``ModelCard`` or explicit ``PreprocessParams``.

    Returns:
        ``torch.Tensor`` of shape ``(channels, crop_h, crop_w)``, dtype float32.
    """
    params = as_params(card_or_params)
    pil = load_image(image).convert("L" if params.channels == 1 else "RGB")
    pixels = torch.from_numpy(np.array(pil, dtype=np.uint8, copy=True))  # H×W(×C) uint8, like pil_to_tensor
    x = pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    x = resize(x, params)
    x = center_crop(x, params.crop)
    x = x.float() / params.pixel_scale
    mean = torch.tensor(params.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(params.std, dtype=torch.float32).view(-1, 1, 1)
    return ((x - mean) / std).contiguous()


def resize(pixels: torch.Tensor, params: PreprocessParams) -> torch.Tensor:
    """Resize a uint8 ``C×H×W`` tensor as torchvision's ``Resize`` does (antialiased bilinear, uint8 out)."""
    h, w = pixels.shape[-2:]
    size = resized_size(h, w, params.resize, params.crop)
    if size == (h, w):
        return pixels
    if pixels.device.type == "cpu":
        # torch's CPU kernel takes uint8 directly and, like Pillow, rounds to uint8 between its horizontal and
        # vertical passes: this is what torchvision's resize of a uint8 tensor runs, and it matches Pillow.
        return F.interpolate(pixels.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    out = F.interpolate(pixels.unsqueeze(0).float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    # A resize of uint8 pixels yields uint8 pixels (Pillow's, and torchvision's on uint8 tensors): round back.
    return out.round_().clamp_(0, 255).to(torch.uint8)


def center_crop(pixels: torch.Tensor, crop) -> torch.Tensor:
    """torchvision's ``CenterCrop`` on a ``C×H×W`` tensor: zero padding where the image is smaller."""
    crop_h, crop_w = (int(v) for v in crop)
    h, w = pixels.shape[-2:]
    top, left = crop_origin(h, w, (crop_h, crop_w))
    pad_top, pad_left = max(0, -top), max(0, -left)
    pad_bottom, pad_right = max(0, top + crop_h - h), max(0, left + crop_w - w)
    if pad_top or pad_left or pad_bottom or pad_right:
        pixels = F.pad(pixels, (pad_left, pad_right, pad_top, pad_bottom), value=0)
        top, left = top + pad_top, left + pad_left
    return pixels[..., top : top + crop_h, left : left + crop_w]
