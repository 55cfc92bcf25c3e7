"""The ``edgecnn`` command line: thin Typer commands over the Python API.

Each command parses its options, calls the API, renders the result and sets the exit code.
User errors (``EdgeCNNError``) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Callable, Optional

import typer

from .errors import EdgeCNNError

app = typer.Typer(
    name="edgecnn",
    help="Classic CNNs from PyTorch to the edge: export to ONNX (fp32/fp16/int8), validate, benchmark, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and a non-zero exit; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeCNNError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("interrupted; nothing was written over existing artifacts", err=True)
            raise typer.Exit(130)

    return wrapper


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


@app.command("list")
@handle_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the architectures: task, parameters, GFLOPs, input size, published checkpoints."""
    from .models import get_spec, list_models

    specs = [get_spec(n) for n in list_models()]
    if as_json:
        typer.echo(json.dumps([_spec_dict(s) for s in specs], indent=2))
        return
    rows = [
        [s.name, s.task, _fmt_params(s.num_params), f"{s.gflops:.2f}", "x".join(map(str, s.input_size)),
         ", ".join(c.name for c in s.checkpoints) or "-"]
        for s in specs
    ]
    typer.echo(_table(["name", "task", "params", "GFLOPs", "input", "published checkpoints"], rows))


@app.command("info")
@handle_errors
def info_cmd(name: str = typer.Argument(..., help="Model name or alias."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show everything known about one architecture."""
    from .models import get_spec

    spec = get_spec(name)
    data = _spec_dict(spec)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "checkpoints":
            typer.echo("checkpoints:" + ("" if value else " none published"))
            for c in value:
                acc = f"acc@1 {c['acc1']}  acc@5 {c['acc5']}" if c["acc1"] is not None else "no ImageNet accuracy"
                typer.echo(f"  {c['name']:<22} {acc}  resize {c['resize']} crop {c['crop']}  {c['url']}")
        else:
            typer.echo(f"{key + ':':<18}{value}")


def _spec_dict(spec) -> dict:
    import dataclasses

    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "family": spec.family,
        "task": spec.task,
        "params": spec.num_params,
        "gflops": spec.gflops,
        "input_size": list(spec.input_size),
        "min_input_size": list(spec.min_input_size),
        "size_multiple": spec.size_multiple,
        "num_classes": spec.num_classes,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "options": spec.arch_options,
        "paper": spec.paper,
        "checkpoints": [
            {k: v for k, v in dataclasses.asdict(c).items() if k not in ("arch_options",)} for c in spec.checkpoints
        ],
    }


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
