"""Image preprocessing without torch: the exact recipe of the PyTorch path, in numpy and Pillow.

An exported model is only as good as the pixels fed to it. This module reproduces torchvision's
classification recipe (``Resize(resize)`` on a PIL image → ``CenterCrop(crop)`` → ``ToTensor`` →
``Normalize(mean, std)``) with numpy and Pillow alone, so that apps and the torch-free runtime
(``edgecnn.runtime``) feed a model what it was trained and exported with. ``edgecnn.transforms`` holds the
same recipe in torch ops; a test keeps the two in agreement.

Only numpy, Pillow and edgecnn's stdlib-only modules (card, errors) are imported here.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.card import ModelCard
from ..core.errors import InputError, first_line

#: File suffixes treated as images when a folder is expanded.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

ImageLike = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


@dataclass(frozen=True)
class PreprocessParams:
    """How to turn an image into model input; the preprocessing part of a ``ModelCard``.

    Attributes:
        crop: ``(H, W)`` fed to the model (centre crop after the resize).
        resize: the shorter side is resized to this first; ``None`` resizes the whole image straight to ``crop``.
        mean / std: per-channel normalisation applied after dividing by ``pixel_scale``.
        pixel_scale: pixel values are divided by this (255 → values in [0, 1]).
        channels: 3 for RGB models, 1 for grayscale (Pillow's ``L`` conversion).
    """

    crop: tuple
    resize: int | None = None
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    pixel_scale: float = 255.0
    channels: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.crop, int) or (isinstance(self.crop, (tuple, list)) and len(self.crop) == 2):
            object.__setattr__(self, "crop", _pair(self.crop))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.crop) != 2 or any(int(v) < 1 for v in self.crop):
            raise InputError(f"crop must be two positive sizes (H, W), got {self.crop!r}")
        if self.resize is not None and int(self.resize) < 1:
            raise InputError(f"resize must be a positive size or None, got {self.resize!r}")
        if self.channels not in (1, 3):
            raise InputError(f"models take 1 (grayscale) or 3 (RGB) channels, not {self.channels}")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != self.channels:
                raise InputError(f"{name} needs {self.channels} value(s) for a {self.channels}-channel model, "
                                 f"got {list(getattr(self, name))}")
        if any(float(s) == 0 for s in self.std):
            raise InputError(f"std must not contain zeros, got {list(self.std)}")

    @classmethod
    def from_card(cls, card: ModelCard) -> "PreprocessParams":
        """The preprocessing recorded in a model card."""
        shape = card.input_shape
        channel_axis = 3 if card.layout == "NHWC" else 1
        channels = shape[channel_axis] if isinstance(shape[channel_axis], int) else len(card.mean)
        return cls(crop=_pair(card.crop), resize=card.resize, mean=tuple(card.mean), std=tuple(card.std),
                   pixel_scale=float(card.pixel_scale), channels=int(channels))


def as_params(card_or_params: ModelCard | PreprocessParams) -> PreprocessParams:
    """Accept either a ``ModelCard`` or ``PreprocessParams``."""
    if isinstance(card_or_params, PreprocessParams):
        return card_or_params
    if isinstance(card_or_params, ModelCard):
        return PreprocessParams.from_card(card_or_params)
    raise TypeError(f"expected a ModelCard or PreprocessParams, got {type(card_or_params).__name__}")


def load_image(source: ImageLike) -> Image.Image:
    """Open an image as RGB, with its EXIF orientation applied.

    Args:
        source: a path, the encoded bytes of a file, a PIL image, or a uint8 array (H×W or H×W×C, RGB order).

    Returns:
        A fully decoded RGB ``PIL.Image``.

    Raises:
        InputError: the file is missing or is not a readable image (the message names it).
    """
    if isinstance(source, Image.Image):
        image, name = source, "image"
    elif isinstance(source, np.ndarray):
        return _from_array(source)
    elif isinstance(source, (bytes, bytearray)):
        image, name = _open(io.BytesIO(source), "image bytes")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: no such image file")
        image, name = _open(path, str(path))
    else:
        raise InputError(f"cannot read an image from a {type(source).__name__}; pass a path, bytes or a PIL image")
    try:
        # Phone photos are stored sideways with an EXIF rotation tag; PyTorch data loaders that use
        # ImageOps.exif_transpose and apps that show the photo upright both expect it applied.
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (OSError, SyntaxError, ValueError) as exc:  # truncated data surfaces when pixels are decoded
        raise InputError(f"{name}: not a readable image ({first_line(exc)})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB, by value rather than by clipping.

    Pillow's own ``convert("RGB")`` clips 16- and 32-bit integer images (``I;16``, ``I``) at 255, so a 16-bit
    PNG would read as solid white: those are scaled down to 8 bits first (16-bit → ÷257, the exact map of
    65535 to 255). Float images (``F``) are taken as 0–1 when they fit there, else 0–255. Palette, CMYK, LA
    and RGBA images go through Pillow's conversion (transparency dropped, as torchvision's loaders do).
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def resize_crop(image: Image.Image, params: PreprocessParams) -> Image.Image:
    """Resize and centre-crop as torchvision's ``Resize`` + ``CenterCrop`` do on a PIL image.

    The colour mode is set first (``L`` for grayscale models, else ``RGB``). Areas a crop reaches beyond the
    image (images smaller than the crop) are zero, as torchvision pads them.
    """
    image = image.convert("L" if params.channels == 1 else "RGB")
    crop_h, crop_w = (int(v) for v in params.crop)
    size = resized_size(image.height, image.width, params.resize, (crop_h, crop_w))
    if size != (image.height, image.width):
        # Pillow's BILINEAR is antialiased when shrinking (its filter support grows with the scale):
        # that is what torchvision.transforms.Resize does with PIL input.
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    top, left = crop_origin(image.height, image.width, (crop_h, crop_w))
    if top >= 0 and left >= 0 and top + crop_h <= image.height and left + crop_w <= image.width:
        return image.crop((left, top, left + crop_w, top + crop_h))
    canvas = Image.new(image.mode, (crop_w, crop_h), 0)
    canvas.paste(image, (-left, -top))
    return canvas


def preprocess(image: ImageLike, card_or_params: ModelCard | PreprocessParams) -> np.ndarray:
    """Model input for one image: float32 ``C×H×W``, resized, centre-cropped, scaled and normalised.

    Args:
        image: anything ``load_image`` accepts.
        card_or_params: the model's ``ModelCard`` or explicit ``PreprocessParams``.

    Returns:
        ``np.ndarray`` of shape ``(channels, crop_h, crop_w)``, dtype float32.
    """
    params = as_params(card_or_params)
    pixels = preprocess_uint8(image, params)  # H×W×C uint8
    # Same float32 operations, in the same order, as the torch path: x / scale, then (x - mean) / std.
    x = pixels.astype(np.float32) / np.float32(params.pixel_scale)
    mean = np.asarray(params.mean, dtype=np.float32)
    std = np.asarray(params.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_uint8(image: ImageLike, card_or_params: ModelCard | PreprocessParams) -> np.ndarray:
    """Resized and centre-cropped pixels, uint8 ``H×W×C``, for graphs that normalise inside themselves.

    Use for models exported with embedded preprocessing (``card.preprocess_embedded``, uint8 NHWC input).
    """
    params = as_params(card_or_params)
    pixels = np.asarray(resize_crop(load_image(image), params), dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def resized_size(height: int, width: int, resize: int | None, crop: Sequence[int]) -> tuple[int, int]:
    """Output ``(H, W)`` of the resize step, rounded as torchvision rounds it.

    torchvision sets the shorter side to ``resize`` and truncates the longer one: ``int(resize * long / short)``.
    """
    if resize is None:
        return int(crop[0]), int(crop[1])
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = int(resize), int(int(resize) * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def crop_origin(height: int, width: int, crop: Sequence[int]) -> tuple[int, int]:
    """``(top, left)`` of torchvision's centre crop; negative where the crop is larger than the image.

    torchvision pads a too-small image by ``(crop - size) // 2`` before (the extra pixel goes after) and
    otherwise starts at ``int(round((size - crop) / 2))`` (Python's round: halves go to even).
    """

    def origin(size: int, want: int) -> int:
        return -((want - size) // 2) if want > size else int(round((size - want) / 2.0))

    return origin(height, int(crop[0])), origin(width, int(crop[1]))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) under ``folder``, recursively, sorted; hidden files and folders are skipped."""
    root = Path(folder)
    found = [
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found)


def _open(fp: Any, name: str) -> tuple[Image.Image, str]:
    try:
        image = Image.open(fp)
        image.load()  # decode now: a truncated file fails here, with its name, not later in a resize
        return image, name
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: not a readable image ({first_line(exc)})") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InputError(f"an image array must be uint8 H×W or H×W×C (C = 1, 3 or 4), "
                         f"got {array.dtype} of shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)
