"""The ``edgecnn`` command line: thin Typer commands over the Python API.

``app`` (the Typer app: one-line errors, ``--version``, shell completion, ``NO_COLOR``), ``options`` (the
``Annotated`` option types and ``str`` Enums every command shares, defined once), ``zoo`` (list, info),
``predict``, ``bench``, ``run`` (providers, selftest: torch-free), ``export`` (export: Click itself, for
``--int8 [auto]``), ``artifacts`` (validate, mobile, int8-report: the export stack), ``evaluate`` (eval),
``compare`` (the table across formats and its recommendation), ``scale`` (sweep, the body of
``predict --ray``), ``web`` (web, the body of ``bench --ep wasm|webgpu``). Each command parses its options,
calls the API, renders the result and sets the exit code. User errors become one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

# Each module registers its commands on app (`edgecnn --help` lists them in app.COMMAND_ORDER).
from . import artifacts, bench, compare, evaluate, export, predict, run, scale, web, zoo  # noqa: F401
from .app import app, fail, handle_errors

__all__ = ["app", "fail", "handle_errors", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
