"""What a benchmark run is asked to do: one frozen, validated ``BenchOptions``."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Sequence

from ...core.errors import InputError
from ...core.sizes import parse_hw
from .timing import SETTLE_S

DEFAULT_RUNS = 50
_IO_BINDING = ("auto", True, False, None, "on", "off", "true", "false", "yes", "no")


@dataclass(frozen=True)
class BenchOptions:
    """The options of ``benchmark_many`` (see there for what each means), checked when made.

    ``providers`` becomes a tuple of priority tuples, ``batch_sizes`` a tuple without repeats and
    ``input_size`` an ``(H, W)`` pair, so two equal requests compare equal.

    Raises:
        InputError: runs and seconds both given, a non-positive count, an unknown ``io_binding`` and so on.
    """

    providers: Sequence[str | Sequence[str]] = ("cpu",)
    threads: int | None = None
    batch_sizes: Sequence[int] = (1,)
    warmup: int = 10
    runs: int | None = None
    seconds: float | None = None
    torch_baseline: bool = False
    io_binding: object = "auto"
    input_size: tuple[int, int] | None = None
    graph_opt: str = "all"
    rounds: int = 5
    cache_dir: str | os.PathLike | None = None
    settle_s: float = SETTLE_S  # pause before each chunk (the previous contestant's threads stop spinning)

    def __post_init__(self) -> None:
        if self.runs is not None and self.seconds is not None:
            raise InputError("give either runs or seconds, not both")
        if self.runs is not None and self.runs < 1:
            raise InputError(f"runs must be at least 1, got {self.runs}")
        if self.seconds is not None and self.seconds <= 0:
            raise InputError(f"seconds must be positive, got {self.seconds}")
        if self.settle_s < 0:
            raise InputError(f"settle_s cannot be negative, got {self.settle_s}")
        if self.warmup < 0:
            raise InputError(f"warmup cannot be negative, got {self.warmup}")
        batch_sizes = tuple(dict.fromkeys(int(b) for b in self.batch_sizes))
        if not batch_sizes or min(batch_sizes) < 1:
            raise InputError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
        providers = self.providers
        entries = tuple((p,) if isinstance(p, str) else tuple(p) for p in
                        ([providers] if isinstance(providers, str) else providers))
        if not entries or not all(entries):
            raise InputError("no execution provider given")
        if self.io_binding not in _IO_BINDING:
            raise InputError(f"io_binding must be 'auto', True or False, got {self.io_binding!r}")
        object.__setattr__(self, "batch_sizes", batch_sizes)
        object.__setattr__(self, "providers", entries)
        if self.input_size is not None:
            object.__setattr__(self, "input_size", parse_hw(self.input_size, "input size"))

    def replace(self, **changes) -> "BenchOptions":
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def planned_runs(self, warm_ms: Sequence[float], estimate) -> int:
        """Timed runs for one configuration: ``runs``, or as many as fill ``seconds`` at the warmup's median
        (``estimate()`` times one run when there was no warmup)."""
        if self.seconds is None:
            return self.runs or DEFAULT_RUNS
        import numpy as np

        est = float(np.median(warm_ms)) if warm_ms else estimate()
        return int(max(5, min(100_000, self.seconds * 1000.0 / max(est, 1e-3))))
