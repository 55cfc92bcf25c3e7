"""The ``edgecnn`` command line: thin Typer commands over the Python API.

``app`` (the Typer app, one-line errors), ``options`` (the options commands share, defined once), ``zoo``
(list, info), ``run`` (predict, bench, providers, selftest: torch-free), ``export`` (export, validate, mobile,
int8-report: the export stack). Each command parses its options, calls the API, renders the result and sets
the exit code. User errors become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

# Each module registers its commands on app; imported in the order `edgecnn --help` lists them.
from . import zoo  # noqa: F401,I001
from . import export  # noqa: F401
from . import run  # noqa: F401
from . import evaluate  # noqa: F401
from . import web  # noqa: F401
from . import scale  # noqa: F401
from .app import app, fail, handle_errors

__all__ = ["app", "fail", "handle_errors", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
