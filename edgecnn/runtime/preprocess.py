"""Image preprocessing without torch: the exact recipe of the PyTorch path, in numpy and Pillow.

An exported model is only as good as the pixels fed to it. This module reproduces torchvision's
classification recipe (``Resize(resize)`` on a PIL image → ``CenterCrop(crop)`` → ``ToTensor`` →
``Normalize(mean, std)``) with numpy and Pillow alone, so that apps and the torch-free runtime
(``edgecnn.runtime``) feed a model what it was trained and exported with. ``edgecnn.convert.transforms`` holds the
same recipe in torch ops; a test keeps the two in agreement.

Sizes from outside are bounded before they cost memory (``edgecnn.core.sizes``): an image's pixel count is
checked from its header before it is decoded (``EDGECNN_MAX_IMAGE_PIXELS``), and the resize only computes the
crop window when the whole resized image would be large (a 100000×1 PNG resized to 256 on its short side would
be 25.6 M pixels wide), with Pillow's own arithmetic, so the numbers are those of the whole resize.

Only numpy, Pillow and edgecnn's stdlib-only modules (card, errors, sizes) are imported here.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.card import ModelCard
from ..core.errors import InputError, first_line
from ..core.sizes import MAX_IMAGE_PIXELS_VAR, check_image_pixels, check_input_shape, max_image_pixels
from .resize_window import crop_origin, resize_window, resized_size

#: File suffixes treated as images when a folder is expanded.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

ImageLike = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]  # noqa: UP007 (a runtime alias: 3.10 cannot `|` os.PathLike)

#: Resized images up to this many pixels are made whole by Pillow and then cropped, as torchvision does. Past it
#: (extreme aspect ratios: a 100000×1 image resized to 256 on its short side), only the crop window is computed,
#: by ``resize_window.resize_window`` with Pillow's arithmetic, so memory follows the crop and not the image.
FULL_RESIZE_PIXELS = 1 << 24


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
                raise InputError(
                    f"{name} needs {self.channels} value(s) for a {self.channels}-channel model, "
                    f"got {list(getattr(self, name))}"
                )
        if any(float(s) == 0 for s in self.std):
            raise InputError(f"std must not contain zeros, got {list(self.std)}")
        # every image becomes a channels × crop array: a crop from a card or an option is bounded before it is made
        check_input_shape((self.channels, *self.crop), "the preprocessed image")

    @classmethod
    def from_card(cls, card: ModelCard) -> PreprocessParams:
        """The preprocessing recorded in a model card."""
        shape = card.input_shape
        channel_axis = 3 if card.layout == "NHWC" else 1
        channels = shape[channel_axis] if isinstance(shape[channel_axis], int) else len(card.mean)
        return cls(
            crop=_pair(card.crop),
            resize=card.resize,
            mean=tuple(card.mean),
            std=tuple(card.std),
            pixel_scale=float(card.pixel_scale),
            channels=int(channels),
        )


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
        InputError: the file is missing or is not a readable image, or it declares more pixels than
            ``EDGECNN_MAX_IMAGE_PIXELS`` allows (checked from its header, before decoding); the message names it.
    """
    owned = True  # an image opened here may be rotated in place; a caller's is copied
    if isinstance(source, Image.Image):
        image, name, owned = source, "image", False
        check_image_pixels(image.width, image.height, name)  # it may not be decoded yet
    elif isinstance(source, np.ndarray):
        if source.ndim in (2, 3):
            check_image_pixels(source.shape[1], source.shape[0], "image array")
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
        if owned:
            ImageOps.exif_transpose(image, in_place=True)  # no second copy of a large photo
        else:
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
        # in integers (4 or 8 bytes a pixel, not float64's 8 plus temporaries): rint(v / 257) is
        # (2v + 257) // 514 exactly, since 257 is odd and v / 257 is never a tie
        values = np.asarray(image).astype(np.uint32 if image.mode.startswith("I;16") else np.int64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = (values * 2 + 257) // 514
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def resize_crop(image: Image.Image, params: PreprocessParams) -> Image.Image:
    """Resize and centre-crop as torchvision's ``Resize`` + ``CenterCrop`` do on a PIL image.

    The colour mode is set first (``L`` for grayscale models, else ``RGB``). Areas a crop reaches beyond the
    image (images smaller than the crop) are zero, as torchvision pads them. When the whole resized image would
    pass ``FULL_RESIZE_PIXELS``, only the crop window is computed (same numbers, memory of the crop's size).
    """
    mode = "L" if params.channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    crop_h, crop_w = (int(v) for v in params.crop)
    size = resized_size(image.height, image.width, params.resize, (crop_h, crop_w))
    if size != (image.height, image.width) and size[0] * size[1] > FULL_RESIZE_PIXELS:
        return resize_window(image, size, (crop_h, crop_w))
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


def resize_crop_indices(indices: np.ndarray, params: PreprocessParams, fill: int) -> np.ndarray:
    """A class-index mask (H×W integers) through its image's resize and centre crop, with nearest-neighbour
    sampling: the values of Pillow's NEAREST resize then a crop padded with ``fill``, computed only over the crop
    window (a 100000×1 mask never becomes a 25.6 M-pixel-wide one).

    Returns:
        ``crop`` H×W of ``indices``' dtype.
    """
    crop = (int(params.crop[0]), int(params.crop[1]))
    height, width = indices.shape
    size = resized_size(height, width, params.resize, crop)
    top, left = crop_origin(size[0], size[1], crop)
    out = np.full(crop, fill, dtype=indices.dtype)
    r0, r1 = max(top, 0), min(top + crop[0], size[0])
    c0, c1 = max(left, 0), min(left + crop[1], size[1])
    if r1 > r0 and c1 > c0:
        rows, row_in = _nearest(height, size[0], r0, r1)
        cols, col_in = _nearest(width, size[1], c0, c1)
        values = indices[np.ix_(rows, cols)]
        values[~(row_in[:, None] & col_in[None, :])] = 0  # where Pillow's sampling leaves the image: its zero fill
        out[r0 - top : r1 - top, c0 - left : c1 - left] = values
    return out


#: Up to this many output positions, nearest-neighbour source indices are accumulated step by step as Pillow does;
#: past it (only masks of extreme aspect ratios) they come from the closed form, equal but for float rounding.
_NEAREST_EXACT_STEPS = 1 << 26


def _nearest(in_size: int, out_size: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (clipped) of outputs start..stop-1 of Pillow's NEAREST resize ``in_size → out_size``, and
    whether each falls inside the source (libImaging/Geometry.c, ImagingScaleAffine)."""
    if in_size == out_size:
        return np.arange(start, stop), np.ones(stop - start, dtype=bool)
    step = float(np.float32(in_size)) / out_size  # Pillow passes the box as C floats
    if stop <= _NEAREST_EXACT_STEPS:  # xo = step / 2, then xo += step per output, in double
        positions, carry, chunk = [], step * 0.5, 1 << 20
        for first in range(0, stop, chunk):
            n = min(chunk, stop - first)
            run = np.cumsum(np.concatenate(([carry], np.full(n - 1, step))))  # sequential, like the C loop
            carry = run[-1] + step
            if first + n > start:
                positions.append(run[max(start - first, 0) :])
        where = np.concatenate(positions)
    else:
        where = (np.arange(start, stop) + 0.5) * step
    index = np.where(where < 0, -1, np.trunc(where)).astype(np.int64)
    inside = (index >= 0) & (index < in_size)
    return np.clip(index, 0, in_size - 1), inside


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) under ``folder``, recursively, sorted; hidden files and folders are skipped."""
    root = Path(folder)
    found = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found)


def _open(fp: Any, name: str) -> tuple[Image.Image, str]:
    limit = max_image_pixels()
    _let_pillow_open(limit)
    try:
        with warnings.catch_warnings():
            # Pillow warns of images past its own threshold as it opens them; edgecnn's limit is checked next and
            # named in its one-line error, so Pillow's warning would only add a second, vaguer line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)  # reads the header only
        try:
            check_image_pixels(image.width, image.height, name)  # before a single pixel is decoded
            image.load()  # decode now: a truncated file fails here, with its name, not later in a resize
        except BaseException:
            image.close()  # the file it holds open
            raise
        return image, name
    except Image.DecompressionBombError as exc:  # past twice Pillow's threshold, so past edgecnn's limit too
        raise InputError(
            f"{name}: over edgecnn's limit of {limit:,} pixels ({first_line(exc).rstrip('.')}); set "
            f"{MAX_IMAGE_PIXELS_VAR} to a larger number to read it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name}: not a readable image ({first_line(exc)})") from None


def _let_pillow_open(limit: int) -> None:
    """Raise Pillow's own decompression-bomb threshold when ``EDGECNN_MAX_IMAGE_PIXELS`` was raised past it.

    Pillow refuses images over twice ``Image.MAX_IMAGE_PIXELS`` (179 M pixels by default) as it opens them; a
    user who raised edgecnn's limit above that asked for such images. It is never lowered here.
    """
    pillow = Image.MAX_IMAGE_PIXELS
    if pillow is not None and 2 * pillow < limit:
        Image.MAX_IMAGE_PIXELS = (limit + 1) // 2


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"an image array must be uint8 H×W or H×W×C (C = 1, 3 or 4), got {array.dtype} of shape {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)
