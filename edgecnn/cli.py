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


@app.command("providers")
@handle_errors
def providers_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List onnxruntime execution providers: short name, ORT name, whether this build has it, how to get it."""
    import onnxruntime

    from .providers import PROVIDERS, available

    here = set(available())
    data = [{"name": p.name, "ort_name": p.ort_name, "kind": p.kind, "available": p.name in here,
             "install": p.install} for p in PROVIDERS.values()]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [[d["name"], d["ort_name"], d["kind"], "yes" if d["available"] else "no",
             "-" if d["available"] else d["install"]] for d in data]
    typer.echo(f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})")
    typer.echo(_table(["ep", "onnxruntime name", "kind", "here", "how to get it"], rows))


def _bench_ints(text: str, what: str) -> list[int]:
    from .errors import InputError

    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{what} must be positive integers, got {text!r}")
    return values


@app.command("bench")
@handle_errors
def bench_cmd(
    models: list[str] = typer.Argument(..., help="ONNX files to benchmark, timed side by side."),
    ep: str = typer.Option("cpu", "--ep", help="Execution providers, each benchmarked on its own: cpu,cuda. "
                           "Join with + for one session with a priority list: tensorrt+cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads (and torch threads)."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, e.g. 1,8."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs per configuration."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Timed runs per configuration (default 50)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Instead of --runs: seconds per configuration."),
    torch_baseline: bool = typer.Option(False, "--torch", help="Also time the PyTorch eager model, side by side."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="H,W for models with dynamic height/width."),
    graph_opt: str = typer.Option("all", "--graph-opt", help="onnxruntime graph optimization: disable/basic/extended/all."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the results as JSON (docs/bench_schema.md)."),
    md_out: Optional[str] = typer.Option(None, "--md", help="Write a markdown table."),
) -> None:
    """Time ONNX models: latency percentiles, throughput, memory, per execution provider."""
    from .bench import benchmark_many, report_dict, table_rows, to_markdown, write_text_atomic
    from .errors import InputError

    entries = [[n for n in item.split("+") if n.strip()] for item in ep.split(",") if item.strip()]
    if not entries:
        raise InputError("--ep needs at least one provider, e.g. --ep cpu")
    size = None
    if input_size:
        hw = _bench_ints(input_size, "--input-size")
        if len(hw) not in (1, 2):
            raise InputError(f"--input-size is H,W or one number, got {input_size!r}")
        size = (hw[0], hw[-1])
    results = benchmark_many(models, providers=entries, threads=threads, batch_sizes=_bench_ints(batch, "--batch"),
                             warmup=warmup, runs=runs, seconds=seconds, torch_baseline=torch_baseline,
                             input_size=size, graph_opt=graph_opt)
    headers, rows = table_rows(results)
    typer.echo(_table(headers, rows))
    typer.echo(f"\n{results[0].method}; threads: {results[0].threads.requested or 'default'}")
    for r in results:
        if r.node_assignment and len(r.node_assignment) > 1:
            typer.echo(f"{r.model_path}: nodes per provider " +
                       ", ".join(f"{k} {v}" for k, v in r.node_assignment.items()))
    if json_out:
        typer.echo(f"wrote {write_text_atomic(json_out, json.dumps(report_dict(results), indent=2) + chr(10))}")
    if md_out:
        typer.echo(f"wrote {write_text_atomic(md_out, to_markdown(results))}")


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
