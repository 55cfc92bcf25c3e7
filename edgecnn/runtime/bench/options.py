"""What a benchmark run is asked to do: one frozen, validated ``BenchOptions``."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass

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
        check_counts(runs=self.runs, seconds=self.seconds, warmup=self.warmup, threads=self.threads)
        if not _real(self.settle_s) or self.settle_s < 0:
            raise InputError(f"settle_s must be a finite number of seconds, 0 or more, got {self.settle_s!r}")
        _whole(self.rounds, "rounds", 1)
        batch_sizes = tuple(dict.fromkeys(int(b) for b in self.batch_sizes))
        if not batch_sizes or min(batch_sizes) < 1:
            raise InputError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
        providers = self.providers
        entries = tuple(
            (p,) if isinstance(p, str) else tuple(p) for p in ([providers] if isinstance(providers, str) else providers)
        )
        if not entries or not all(entries):
            raise InputError("no execution provider given")
        if self.io_binding not in _IO_BINDING:
            raise InputError(f"io_binding must be 'auto', True or False, got {self.io_binding!r}")
        object.__setattr__(self, "batch_sizes", batch_sizes)
        object.__setattr__(self, "providers", entries)
        if self.input_size is not None:
            object.__setattr__(self, "input_size", parse_hw(self.input_size, "input size"))

    def replace(self, **changes) -> BenchOptions:
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


def _real(value: object) -> bool:
    """A finite real number (not a bool, not NaN or ±inf)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object, name: str, least: int) -> None:
    if not _real(value) or value != int(value) or value < least:
        raise InputError(f"{name} must be a whole number, {least} or more, got {value!r}")


def check_counts(
    *, runs: object = None, seconds: object = None, warmup: object = 0, threads: object = None, prefix: str = ""
) -> None:
    """Check the counts of a benchmark (the API's ``BenchOptions``, the CLI before anything is loaded).

    ``runs`` and ``threads`` (when given) are whole numbers of at least 1, ``warmup`` at least 0, ``seconds`` a
    finite number above 0 — NaN and infinity are refused, not turned into the 100,000-run cap — and at most one
    of ``runs`` and ``seconds`` is given. ``prefix`` ("--") spells the names as the CLI's flags.

    Raises:
        InputError: one line naming the value.
    """
    if runs is not None and seconds is not None:
        raise InputError(f"give either {prefix}runs or {prefix}seconds, not both")
    if runs is not None:
        _whole(runs, f"{prefix}runs", 1)
    if seconds is not None and (not _real(seconds) or seconds <= 0):
        raise InputError(f"{prefix}seconds must be a finite number above 0, got {seconds!r}")
    _whole(warmup, f"{prefix}warmup", 0)
    if threads is not None:
        _whole(threads, f"{prefix}threads", 1)
