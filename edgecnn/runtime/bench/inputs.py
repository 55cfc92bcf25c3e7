"""Random inputs of a graph's shapes and dtypes, and what a file's card says about its image size."""

from __future__ import annotations

import numpy as np

from ...core.card import ModelCard
from ...core.errors import InputError
from ...core.sizes import check_input_shape
from ..runner import Runner
from ..session import ORT_DTYPES

# The input types bench feeds (their numpy dtypes come from session.ORT_DTYPES).
_FED_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(uint8)", "tensor(int8)")
_DTYPES = {t: ORT_DTYPES[t] for t in _FED_TYPES}


def read_card(runner: Runner, source: str | None = None) -> ModelCard | None:
    """The edgecnn card in the runner's metadata, or ``None`` without one.

    A card whose values are of the wrong type is refused in one line naming the key (``ModelCard.from_metadata``).
    """
    return ModelCard.from_metadata(runner.metadata, source)


def hw_from_card(card: ModelCard | None) -> tuple[int, int] | None:
    """The image ``(H, W)`` the card says (its input shape, else its crop), or ``None``."""
    if card is None:
        return None
    shape = list(card.input_shape or [])
    hw = shape[1:3] if card.layout == "NHWC" else shape[2:4]
    if len(hw) == 2 and all(isinstance(v, int) for v in hw):
        return int(hw[0]), int(hw[1])
    if card.crop and len(card.crop) == 2:
        return int(card.crop[0]), int(card.crop[1])
    return None


def make_inputs(
    runner: Runner,
    batch_size: int,
    *,
    input_size: tuple[int, int] | None = None,
    card: ModelCard | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random inputs of the graph's shapes and dtypes for ``batch_size`` images.

    The first axis is the batch; other dynamic axes (U-Net's height/width) take ``input_size`` ``(H, W)``,
    else the card's input shape or crop. Float inputs are standard normal, integer ones uniform over their range.

    Raises:
        InputError: a fixed batch axis other than ``batch_size``, dynamic axes with no size known, an odd dtype.
    """
    rng = np.random.default_rng(seed)
    hw = tuple(input_size) if input_size else hw_from_card(card)
    feeds = {}
    for inp in runner.inputs:
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise InputError(f"input {inp.name!r} has type {inp.type}; bench feeds float32/float16/uint8/int8 only")
        dims = list(inp.shape)
        if not dims:
            raise InputError(f"input {inp.name!r} is a scalar; bench expects image tensors")
        if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch_size:
            raise InputError(f"{inp.name!r} has a fixed batch of {dims[0]}; use --batch {dims[0]}")
        dims[0] = batch_size
        free = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
        if free:
            if hw is None or len(free) != 2:
                raise InputError(
                    f"input {inp.name!r} has dynamic axes {list(inp.shape)}; give the image size with --input-size H,W"
                )
            dims[free[0]], dims[free[1]] = hw
        check_input_shape(dims, f"input {inp.name!r} at batch {batch_size}")  # before it is allocated
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            feeds[inp.name] = rng.integers(info.min, int(info.max) + 1, size=dims, dtype=dtype)
        else:
            feeds[inp.name] = rng.standard_normal(dims).astype(dtype)
    return feeds
