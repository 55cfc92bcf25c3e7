"""The Typer app, and the rules every command shares: one-line errors, exit codes, the export-stack message.

User errors (``EdgeCNNError``) and bad option values become one ``error: ...`` line on stderr and a non-zero
exit, never a traceback or a usage box. A command that needs the export stack (torch, onnxscript, onnxsim,
scikit-learn) in a device install without it says so in one line and exits 2.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated

import click
import typer
from typer.core import TyperGroup  # Typer's documented base for a custom group (``Typer(cls=...)``)

from ..core.errors import EdgeCNNError

# Modules only the export stack brings (pip install "edgecnn[export]"); a device install has none of them.
EXPORT_STACK = ("torch", "torchvision", "onnx", "onnxscript", "onnxsim", "sklearn", "scipy")
# What `export`, `mobile` and `validate` need before they start (checked up front: no half-done progress).
EXPORT_NEEDS = ("torch", "onnx", "onnxscript", "onnxsim", "sklearn")
EXPORT_HINT = 'pip install "edgecnn[export]"'
# Commands written with Click itself, for what Typer cannot say (``export --int8 [auto]``), added by the group.
CLICK_COMMANDS: dict[str, click.Command] = {}


def _is_usage_error(exc: BaseException) -> bool:
    """A bad option value or an unknown option: Click's ``ClickException`` (Typer's own copy of Click included).

    Typer ships its own Click, whose exception classes it does not export; both copies, and ``TyperException``,
    carry an integer ``exit_code`` and a ``format_message()``, which is what is read here.
    """
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


def _one_line(exc: Exception) -> int:
    """Print a usage error as one ``error: COMMAND: message`` line; its exit code."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path + ": " if ctx is not None else ""
    typer.echo(f"error: {command}{' '.join(exc.format_message().split())}", err=True)
    return exc.exit_code


class OneLineGroup(TyperGroup):
    """Bad option values and unknown options print ``error: ...`` once (exit 2), not Typer's usage box.

    It also adds ``CLICK_COMMANDS`` and honours ``NO_COLOR`` (https://no-color.org): no ANSI colour when set.
    """

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for name, command in CLICK_COMMANDS.items():
            self.add_command(command, name)

    def list_commands(self, ctx) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if os.environ.get("NO_COLOR"):  # any non-empty value
            extra.setdefault("color", False)
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:  # a Click command's --help
            rv = exc.exit_code
        except (typer.Abort, click.Abort):
            typer.echo("interrupted", err=True)
            rv = 130
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            rv = _one_line(exc)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


# The order `edgecnn --help` lists the commands in.
COMMAND_ORDER = (
    "compare",
    "eval",
    "export",
    "validate",
    "mobile",
    "int8-report",
    "predict",
    "providers",
    "bench",
    "selftest",
    "sweep",
    "web",
    "list",
    "info",
)

app = typer.Typer(
    name="edgecnn",
    cls=OneLineGroup,
    help="Classic CNNs from PyTorch to the edge: export to ONNX (fp32/fp16/int8), validate, benchmark, deploy.\n\n"
    "Conventions, the same in every command: --ep is a comma list of execution providers in priority order "
    "for ONE session (cuda,cpu); --each-ep (bench, validate) runs each entry on its own (cpu,cuda; join with "
    "+ for a priority list: cpu,tensorrt+cuda); --json prints JSON on stdout; --force replaces what exists. "
    'Exporting needs the export stack: pip install "edgecnn[export]". NO_COLOR=1 turns colour off.',
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: 'edgecnn[export]' stays as written
)


def version() -> str:
    """edgecnn's version (``edgecnn.core.version``)."""
    from ..core.version import __version__

    return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edgecnn {version()}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:  # bare `edgecnn`: the help, on stderr, exit 2
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(2)


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
