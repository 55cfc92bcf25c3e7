"""The one parser of sizes and integer lists the CLI and the API accept (standard library only).

``224``, ``"224"``, ``"256x320"``, ``"256,320"``, ``(256, 320)`` all mean an input of H×W; every command that
takes a size or a list of integers goes through here, so they all accept and refuse the same spellings.

It also holds the size limits on what comes from outside (``max_image_pixels``, ``max_input_elements``, each
raised by an environment variable) and the checks every room uses against them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .errors import InputError

# Past this an input no classic CNN needs: a 10000×10000 image would take tens of GB per activation.
MAX_SIDE = 4096

# --- limits on what comes from outside (images, models, golden data), each raised by an environment variable ---
#
# A 374-byte PNG can declare 100000×1 pixels and a 1 kB .onnx file a 1×3×30000×30000 input: sizes are checked
# against these before anything of that size is decoded or allocated. The variables are read at each check (so
# a test or an app may set them at run time) and are passed on to Ray workers (``limit_env``).

#: Environment variable raising the pixel limit of one image (width × height, checked from the file's header).
MAX_IMAGE_PIXELS_VAR = "EDGECNN_MAX_IMAGE_PIXELS"
#: 100 megapixels: a 12 000 × 8 000 photograph; 0.4 GB once decoded (Pillow keeps RGB in 4 bytes a pixel).
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000

#: Environment variable raising the element limit of one model input or golden array (batch × C × H × W).
MAX_INPUT_ELEMENTS_VAR = "EDGECNN_MAX_INPUT_ELEMENTS"
#: 4 × 4096²: one 4096×4096 RGB image (``MAX_SIDE``, the exporter's largest) with room to spare, or a batch of
#: 16 at 1024×1024; 256 MiB as float32.
DEFAULT_MAX_INPUT_ELEMENTS = 4 * MAX_SIDE * MAX_SIDE

LIMIT_VARS = (MAX_IMAGE_PIXELS_VAR, MAX_INPUT_ELEMENTS_VAR)


def _numbers(value: str | int | tuple | list) -> list[int]:
    """The integers a size or list spells (``"1,8"``, ``"256x320"``, ``8``, ``[1, 8]``); ValueError/TypeError if not."""
    if isinstance(value, (tuple, list)):
        items = list(value)
    elif isinstance(value, int):
        items = [value]
    else:
        text = str(value).strip().strip("()[]").lower().replace(" ", "").replace("x", ",")
        items = [p for p in text.split(",") if p]
    return [int(v) for v in items]


def parse_ints(value: str | int | tuple | list, what: str) -> list[int]:
    """``"1,8"``, ``"256x320"``, ``8`` or ``[1, 8]`` → positive integers; one-line ``InputError`` otherwise."""
    try:
        numbers = _numbers(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be positive integers (e.g. 224 or 256x320), got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise InputError(f"{what} must be positive integers (e.g. 224 or 256x320), got {value!r}")
    return numbers


def parse_hw(value: str | int | tuple | list, what: str = "input size") -> tuple[int, int]:
    """``224`` → ``(224, 224)``; ``"256x320"`` → ``(256, 320)``; at most ``MAX_SIDE`` a side.

    Raises:
        InputError: ``"input size 'big' is not a number or HxW (e.g. 224 or 256x320)"``, or a side over the limit.
    """
    try:
        numbers = _numbers(value)
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 1:
        raise InputError(f"{what} {value!r} is not a number or HxW (e.g. 224 or 256x320)")
    h, w = numbers[0], numbers[-1]
    if max(h, w) > MAX_SIDE:
        raise InputError(f"{what} {h}x{w} is larger than edgecnn's limit of {MAX_SIDE} a side")
    return h, w


def parse_batch(value: str | int | None) -> int | None:
    """``"dynamic"``/``None`` → ``None``; a positive integer → that fixed batch size."""
    if value is None or str(value).strip().lower() == "dynamic":
        return None
    try:
        batch = int(value)
    except (TypeError, ValueError):
        raise InputError(f"batch '{value}' must be 'dynamic' or a positive integer") from None
    if batch < 1:
        raise InputError(f"batch must be 'dynamic' or a positive integer, got {batch}")
    return batch


# --- the limits ---------------------------------------------------------------------------------------------------


def _limit(var: str, default: int) -> int:
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{var}={text!r} must be a positive whole number (the default is {default:,})")
    return value


def max_image_pixels() -> int:
    """The most pixels (width × height) one image may declare: ``EDGECNN_MAX_IMAGE_PIXELS``, default 100 M."""
    return _limit(MAX_IMAGE_PIXELS_VAR, DEFAULT_MAX_IMAGE_PIXELS)


def max_input_elements() -> int:
    """The most values one model input (or golden array) may hold: ``EDGECNN_MAX_INPUT_ELEMENTS``, default 4×4096²."""
    return _limit(MAX_INPUT_ELEMENTS_VAR, DEFAULT_MAX_INPUT_ELEMENTS)


def limit_env() -> dict[str, str]:
    """The limit variables set in this process, to pass on to processes that check sizes too (Ray workers)."""
    return {var: os.environ[var] for var in LIMIT_VARS if os.environ.get(var, "").strip()}


def check_image_pixels(width: int, height: int, what: str) -> None:
    """Refuse an image whose header declares more than ``max_image_pixels()``, before it is decoded.

    Raises:
        InputError: naming the image, its size and the limit, and the variable that raises it.
    """
    limit = max_image_pixels()
    if int(width) * int(height) > limit:
        raise InputError(
            f"{what}: {width}x{height} is {int(width) * int(height):,} pixels, over edgecnn's limit of "
            f"{limit:,}; set {MAX_IMAGE_PIXELS_VAR} to a larger number to read it"
        )


def shape_elements(shape: Sequence) -> int:
    """Values in a tensor of ``shape``; a dynamic axis (a name, ``None``, 0 or negative) counts as 1."""
    count = 1
    for dim in shape:
        if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
            count *= dim
    return count


def check_input_shape(shape: Sequence, what: str) -> int:
    """Refuse a tensor shape (a model's declared input, a golden array) over ``max_input_elements()`` values,
    before anything of that size is allocated; dynamic axes count as 1. Returns the element count.

    Raises:
        InputError: naming ``what``, the shape and the limit, and the variable that raises it.
    """
    count, limit = shape_elements(shape), max_input_elements()
    if count > limit:
        shown = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in shape)
        raise InputError(
            f"{what} is {shown} = {count:,} values, over edgecnn's limit of {limit:,}; set "
            f"{MAX_INPUT_ELEMENTS_VAR} to a larger number to allow it"
        )
    return count
