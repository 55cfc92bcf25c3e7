"""One row of the fault catalogue (tests/catalogue_cases.py and the themed modules it gathers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple
    code: int
    fragment: str
    guarantee: str
    setup: Optional[Callable] = None  # setup(ctx) makes the inputs under ctx.tmp
    keep: tuple = ()  # paths (relative to {tmp}) whose sha256 must be the same after the command
    marker: bool = False  # the inputs carry code that would create {tmp}/CODE_RAN
    # Memory rows: run the command in a child process under an address-space limit of this many MiB (so a
    # regression fails the row instead of killing a test worker), and check its peak RSS stays under
    # max_rss_mb. None: run in-process with Typer's runner.
    address_space_mb: Optional[int] = None
    max_rss_mb: Optional[int] = None
    cwd: Optional[str] = None  # run with this working folder (relative to {tmp}); None: unchanged
