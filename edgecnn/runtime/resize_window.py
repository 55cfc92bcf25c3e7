"""The geometry of torchvision's resize and centre crop, and the crop window of a large resize computed with
Pillow's own arithmetic (``runtime/preprocess.py`` uses it when the whole resized image would be large).

Only numpy and Pillow are imported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image


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


# --- the crop window of a large resize, with Pillow's arithmetic -------------------------------------------------
#
# Pillow's antialiased BILINEAR resize (libImaging/Resample.c) is separable: per output column a few input columns
# with weights from ``precompute_coeffs``, rounded to 22-bit fixed point, summed in integers and rounded to uint8;
# then the same per output row (Pillow 13 runs the vertical pass first when the height shrinks more than twice
# as much as the width; earlier versions always the horizontal one first). Computing only the output rows and
# columns of the crop, with the coefficients and the pass order the whole resize would use, gives the very pixels
# Pillow's whole resize would have there (a test compares them); web/assets/preprocess.mjs does the same in
# JavaScript.

_PRECISION_BITS = 22  # Pillow's 8-bit resampling: 32 - 8 - 2


def _coefficients(in_size: int, out_size: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """First input index and fixed-point weights (``ksize`` a row, 0 past the filter) of outputs start..stop-1."""
    scale = float(np.float32(in_size)) / out_size  # Pillow passes the box as C floats
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter's support is 1
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(start, stop, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    count = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - xmin
    taps = np.arange(ksize)
    t = np.abs(((taps[None, :] + xmin[:, None]) - center[:, None] + 0.5) * (1.0 / filterscale))
    weights = np.where((t < 1.0) & (taps[None, :] < count[:, None]), 1.0 - t, 0.0)
    total = np.zeros(len(center))
    for x in range(ksize):  # summed in Pillow's order
        total += weights[:, x]
    weights = np.divide(weights, total[:, None], out=weights, where=total[:, None] != 0)
    return xmin, np.trunc(0.5 + weights * (1 << _PRECISION_BITS)).astype(np.int64)


def _resample(pixels: np.ndarray, axis: int, offset: int, xmin: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One pass along ``axis`` (0 rows, 1 columns) of H×W×C uint8 ``pixels``, whose index 0 is input ``offset``.

    Sums in int32 as Pillow does (weights are non-negative and sum to about 2**22, so 255 of them stay below
    2**31), a block of lines at a time so that the temporaries stay near 4 MB whatever the crop.
    """
    shape = [1, 1, 1]
    shape[axis] = len(xmin)
    # taps past a row's count weigh 0; their index is only kept in range
    taps = [
        (np.clip(xmin + x - offset, 0, pixels.shape[axis] - 1), weights[:, x].astype(np.int32).reshape(shape))
        for x in range(weights.shape[1])
    ]
    out = np.empty(pixels.shape[:axis] + (len(xmin),) + pixels.shape[axis + 1 :], dtype=np.uint8)
    other = 1 - axis
    lines = max(1, (1 << 20) // (len(xmin) * pixels.shape[2]))
    for start in range(0, pixels.shape[other], lines):
        part = (slice(start, start + lines),) if other == 0 else (slice(None), slice(start, start + lines))
        block = pixels[part]
        acc = np.full(out[part].shape, 1 << (_PRECISION_BITS - 1), dtype=np.int32)
        for index, weight in taps:
            acc += np.take(block, index, axis=axis) * weight
        out[part] = np.clip(acc >> _PRECISION_BITS, 0, 255)
    return out


def _window_pass(image_size: int, size: int, start: int, stop: int) -> tuple:
    """What one axis needs: ``(first, stop)`` input indices read, and the coefficients (``None``: no pass)."""
    if size == image_size:
        return (start, stop), None
    first, weights = _coefficients(image_size, size, start, stop)
    return (int(first.min()), min(int((first + weights.shape[1]).max()), image_size)), (first, weights)


def resize_window(image: Image.Image, size: tuple[int, int], crop: tuple[int, int]) -> Image.Image:
    """``crop`` of ``image`` resized to ``size`` (H, W) and centre-cropped, computing only the crop window."""
    (height, width), (crop_h, crop_w) = size, crop
    top, left = crop_origin(height, width, crop)
    r0, r1 = max(top, 0), min(top + crop_h, height)  # the window, in resized coordinates
    c0, c1 = max(left, 0), min(left + crop_w, width)
    channels = 1 if image.mode == "L" else 3
    out = np.zeros((crop_h, crop_w, channels), dtype=np.uint8)  # zero where the crop reaches past the image
    if r1 > r0 and c1 > c0:
        rows, vertical = _window_pass(image.height, height, r0, r1)
        cols, horizontal = _window_pass(image.width, width, c0, c1)
        pixels = np.asarray(image.crop((cols[0], rows[0], cols[1], rows[1])), dtype=np.uint8)
        pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)
        passes = [(1, cols[0], horizontal), (0, rows[0], vertical)]
        if _vertical_first(image.height, image.width, height, width):
            passes.reverse()
        for axis, offset, coefficients in passes:
            if coefficients is not None:
                pixels = _resample(pixels, axis, offset, *coefficients)
        out[r0 - top : r1 - top, c0 - left : c1 - left] = pixels
    return Image.fromarray(out[:, :, 0] if channels == 1 else out, image.mode)


def _vertical_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Whether this Pillow runs the vertical pass first for this resize (Pillow 13's rule, where it has it)."""
    return _pillow_may_run_vertical_first() and (in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2


@functools.lru_cache(maxsize=1)
def _pillow_may_run_vertical_first() -> bool:
    """Asked of the installed Pillow once: a 8×64 noise image resized to 6×10, where the two orders differ."""
    probe = np.random.default_rng(0).integers(0, 256, (64, 8, 1), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(probe[:, :, 0]).resize((6, 10), Image.Resampling.BILINEAR))
    horizontal_first = _resample(
        _resample(probe, 1, 0, *_coefficients(8, 6, 0, 6)), 0, 0, *_coefficients(64, 10, 0, 10)
    )
    return not np.array_equal(pillow, horizontal_first[:, :, 0])
