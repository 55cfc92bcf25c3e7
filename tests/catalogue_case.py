"""One row of the fault catalogue (tests/catalogue_cases.py and the themed modules it gathers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple
    code: int
    fragment: str
    guarantee: str
    setup: Callable | None = None  # setup(ctx) makes the inputs under ctx.tmp
    keep: tuple = ()  # paths (relative to {tmp}) whose sha256 must be the same after the command
    marker: bool = False  # the inputs carry code that would create {tmp}/CODE_RAN
    # Memory rows: run the command in a child process under an address-space limit of this many MiB (so a
    # regression fails the row instead of killing a test worker), and check its peak RSS stays under
    # max_rss_mb. None: run in-process with Typer's runner.
    address_space_mb: int | None = None
    max_rss_mb: int | None = None
    cwd: str | None = None  # run with this working folder (relative to {tmp}); None: unchanged
