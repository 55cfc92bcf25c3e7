"""``edgecnn list`` and ``edgecnn info``: the registry as data, without torch."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, handle_errors
from .options import Json


def _registry():
    """``get_spec``, ``list_models``, ``builder_options``: the registry reads the torch-free specs (models/specs.py)."""
    from ..models.registry import builder_options, get_spec, list_models

    return get_spec, list_models, builder_options


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def spec_dict(spec) -> dict:
    _, _, builder_options = _registry()
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
        "options": builder_options(spec),  # every keyword create_model accepts, with its default
        "paper": spec.paper,
        "checkpoints": [
            {k: v for k, v in dataclasses.asdict(c).items() if k not in ("arch_options",)} for c in spec.checkpoints
        ],
    }


@app.command("list")
@handle_errors
def list_cmd(as_json: Json = False) -> None:
    """List the architectures: task, parameters, GFLOPs, input size, published checkpoints."""
    get_spec, list_models, _ = _registry()
    specs = [get_spec(n) for n in list_models()]
    if as_json:
        typer.echo(json.dumps([spec_dict(s) for s in specs], indent=2))
        return
    rows = [
        [
            s.name,
            s.task,
            _fmt_params(s.num_params),
            f"{s.gflops:.2f}",
            "x".join(map(str, s.input_size)),
            ", ".join(c.name for c in s.checkpoints) or "-",
        ]
        for s in specs
    ]
    typer.echo(text_table(["name", "task", "params", "GFLOPs", "input", "published checkpoints"], rows))


@app.command("info")
@handle_errors
def info_cmd(name: Annotated[str, typer.Argument(help="Model name or alias.")], as_json: Json = False) -> None:
    """Show everything known about one architecture."""
    get_spec, _, _ = _registry()
    data = spec_dict(get_spec(name))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "checkpoints":
            typer.echo("checkpoints:" + (" (weights='imagenet' takes the first)" if value else " none published"))
            for c in value:
                acc = f"acc@1 {c['acc1']}  acc@5 {c['acc5']}" if c["acc1"] is not None else "no ImageNet accuracy"
                typer.echo(f"  {c['name']:<22} {acc}  resize {c['resize']} crop {c['crop']}  {c['url']}")
        else:  # plain text, not Python reprs: lists joined, options as name=default
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            elif isinstance(value, list):
                value = ("x" if key.endswith("size") else ", ").join(map(str, value)) or "-"
            typer.echo(f"{key + ':':<18}{value}")
