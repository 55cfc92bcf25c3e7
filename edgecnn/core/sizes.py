"""The one parser of sizes and integer lists the CLI and the API accept (standard library only).

``224``, ``"224"``, ``"256x320"``, ``"256,320"``, ``(256, 320)`` all mean an input of H×W; every command that
takes a size or a list of integers goes through here, so they all accept and refuse the same spellings.
"""

from __future__ import annotations

from .errors import InputError

# Past this an input no classic CNN needs: a 10000×10000 image would take tens of GB per activation.
MAX_SIDE = 4096


def parse_ints(value: str | int | tuple | list, what: str) -> list[int]:
    """``"1,8"``, ``"256x320"``, ``8`` or ``[1, 8]`` → positive integers; one-line ``InputError`` otherwise."""
    if isinstance(value, (tuple, list)):
        items = list(value)
    elif isinstance(value, int):
        items = [value]
    else:
        text = str(value).strip().strip("()[]").lower().replace(" ", "").replace("x", ",")
        items = [p for p in text.split(",") if p]
    try:
        numbers = [int(v) for v in items]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be positive integers (e.g. 224 or 256x320), got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise InputError(f"{what} must be positive integers (e.g. 224 or 256x320), got {value!r}")
    return numbers


def parse_hw(value: str | int | tuple | list, what: str = "input size") -> tuple[int, int]:
    """``224`` → ``(224, 224)``; ``"256x320"`` → ``(256, 320)``; at most ``MAX_SIDE`` a side."""
    numbers = parse_ints(value, what)
    if len(numbers) not in (1, 2):
        raise InputError(f"{what} is one number or HxW (e.g. 224 or 256x320), got {value!r}")
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
