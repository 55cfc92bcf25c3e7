"""The Typer app, and the rules every command shares: one-line errors, exit codes, the export-stack message.

User errors (``EdgeCNNError``) and bad option values become one ``error: ...`` line on stderr and a non-zero
exit, never a traceback or a usage box. A command that needs the export stack (torch, onnxscript, onnxsim,
scikit-learn) in a device install without it says so in one line and exits 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer
import typer.core

from ..core.errors import EdgeCNNError

_click = typer.core._click

# Modules only the export stack brings (pip install "edgecnn[export]"); a device install has none of them.
EXPORT_STACK = ("torch", "torchvision", "onnx", "onnxscript", "onnxsim", "sklearn", "scipy")
# What `export`, `mobile` and `validate` need before they start (checked up front: no half-done progress).
EXPORT_NEEDS = ("torch", "onnx", "onnxscript", "onnxsim", "sklearn")
EXPORT_HINT = 'pip install "edgecnn[export]"'


class OneLineGroup(typer.core.TyperGroup):
    """Bad option values and unknown options print ``error: ...`` once (exit 2), not Typer's usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except _click.exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True)
            rv = 2
        except _click.exceptions.ClickException as exc:
            command = exc.ctx.command_path + ": " if getattr(exc, "ctx", None) is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {command}{message}", err=True)
            rv = exc.exit_code
        except typer.Abort:
            typer.echo("interrupted", err=True)
            rv = 130
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="edgecnn",
    cls=OneLineGroup,
    help="Classic CNNs from PyTorch to the edge: export to ONNX (fp32/fp16/int8), validate, benchmark, deploy.\n\n"
    "Conventions, the same in every command: --ep is a comma list of execution providers in priority order "
    "for ONE session (cuda,cpu); --each-ep (bench, validate) runs each entry on its own (cpu,cuda; join with "
    "+ for a priority list: cpu,tensorrt+cuda); --json prints JSON on stdout; --force replaces what exists. "
    'Exporting needs the export stack: pip install "edgecnn[export]".',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: 'edgecnn[export]' stays as written
)


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def missing_export_stack(exc: ImportError) -> str | None:
    """The one-line message for a module of the export stack missing here; ``None`` for any other module."""
    name = (exc.name or "").split(".")[0]
    if name not in EXPORT_STACK:
        return None
    return f"this command needs the export stack ({name} is not installed): {EXPORT_HINT}"


def require_export_stack(modules: tuple = EXPORT_NEEDS) -> None:
    """Raise ``ModuleNotFoundError`` for the first of ``modules`` not installed (``handle_errors`` words it)."""
    import importlib.util

    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a finder that refuses the module outright
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and a non-zero exit; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeCNNError as exc:
            fail(str(exc), exc.exit_code)
        except ImportError as exc:  # ModuleNotFoundError, or a blocked import naming its module
            message = missing_export_stack(exc)
            if message is None:
                raise
            fail(message, 2)
        except OSError as exc:  # a full disk, a busy or missing path met mid-run: one line naming the path
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}; nothing was written over existing artifacts", 2)
        except KeyboardInterrupt:
            typer.echo("interrupted; nothing was written over existing artifacts", err=True)
            raise typer.Exit(130) from None

    return wrapper
