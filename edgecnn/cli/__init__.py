"""The ``edgecnn`` command line: thin Typer commands over the Python API.

``app`` (the Typer app, one-line errors), ``options`` (the options commands share, defined once), ``zoo``
(list, info), ``run`` (predict, bench, providers, selftest: torch-free), ``export`` (export, validate, mobile,
int8-report: the export stack). Each command parses its options, calls the API, renders the result and sets
the exit code. User errors become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

# Each module registers its commands on app; imported in the order `edgecnn --help` lists them.
from . import (
    evaluate,  # noqa: F401
    export,  # noqa: F401
    run,  # noqa: F401
    scale,  # noqa: F401
    web,  # noqa: F401
    zoo,  # noqa: F401,I001
)
from .app import app, fail, handle_errors

__all__ = ["app", "fail", "handle_errors", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
