"""Keeping onnxruntime's quantization tools quiet and in their own folder, for the time of one call.

The tools log through the root logger, print to stdout and write temporary files into the working folder; these
context managers contain each of those and restore everything afterwards.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings


@contextlib.contextmanager
def in_folder(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class FromLibrary(logging.Filter):
    """Drops records logged from onnxruntime's quantization code (it logs through the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace(os.sep, "/")
        return "/onnxruntime/quantization/" not in path and "/onnxruntime/tools/" not in path


@contextlib.contextmanager
def quiet():
    """onnxruntime's quantization tools log and print freely; keep that out of the user's terminal.

    Only their records are dropped (a filter on the root logger, where their ``logging.warning`` calls land,
    and their own named loggers raised to ERROR), and everything is restored in ``finally``; the root logger's
    level and other libraries' records are left alone. Their ``print`` calls are caught on stdout meanwhile.
    """
    sink = io.StringIO()
    drop = FromLibrary()
    named = [logging.getLogger(n) for n in ("onnxruntime", "onnxruntime.quantization", "onnxruntime.tools")]
    levels = [lg.level for lg in named]
    root = logging.getLogger()
    root.addFilter(drop)
    for lg in named:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)
        for lg, level in zip(named, levels):
            lg.setLevel(level)
