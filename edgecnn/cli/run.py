"""``edgecnn providers`` and ``selftest``: the device's runtime and a bundle on it, torch-free.

``predict`` is in ``cli.predict`` and ``bench`` in ``cli.bench``; they too need numpy, onnxruntime and Pillow
only (``bench --torch`` excepted: it times the PyTorch model too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, fail, handle_errors
from .options import EP_HELP, Browser, Json, Runtime, session_providers

SelftestEp = Annotated[
    str, typer.Option("--ep", help=EP_HELP + " Test the one your app uses (--runtime browser: wasm or webgpu).")
]
RuntimeOption = Annotated[
    Runtime,
    typer.Option(
        "--runtime",
        help="Where the models run: python (onnxruntime), node (onnxruntime-node) or browser (onnxruntime-web in "
        "headless Chromium).",
    ),
]


@app.command("providers")
@handle_errors
def providers_cmd(as_json: Json = False) -> None:
    """List onnxruntime execution providers: short name, ORT name, whether this build has it, how to get it."""
    import onnxruntime

    from ..runtime.providers import PROVIDERS, available

    here = set(available())
    data = [
        {"name": p.name, "ort_name": p.ort_name, "kind": p.kind, "available": p.name in here, "install": p.install}
        for p in PROVIDERS.values()
    ]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            d["name"],
            d["ort_name"],
            d["kind"],
            "yes" if d["available"] else "no",
            "-" if d["available"] else d["install"],
        ]
        for d in data
    ]
    typer.echo(f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})")
    typer.echo(text_table(["ep", "onnxruntime name", "kind", "here", "how to get it"], rows))


@app.command("selftest")
@handle_errors
def selftest_cmd(
    bundle: Annotated[
        Path, typer.Argument(help="A bundle folder (made by 'edgecnn export NAME --bundle') or its bundle.json.")
    ],
    ep: SelftestEp = "cpu",
    runtime: RuntimeOption = Runtime.python,
    browser: Browser = None,
    as_json: Json = False,
) -> None:
    """Prove this runtime reproduces a bundle's golden outputs: files against bundle.json, then each model.

    Exit status 0 when every model matches within its precision's tolerance, 1 when one does not.
    """
    if runtime is Runtime.python:
        from ..runtime.selftest import selftest

        result = selftest(bundle, providers=session_providers(ep))
    else:
        from ..web.runners import selftest_in

        result = selftest_in(runtime.value, bundle, ep=ep, browser=browser)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_selftest(result)
    if not result.passed:
        fail("self-test FAILED: this runtime does not reproduce the golden outputs", 1)


def _print_selftest(result) -> None:
    rows = [
        [
            c.file,
            c.precision,
            f"{c.max_abs:.1e}",
            f"{c.max_rel:.1e}",
            f"{c.cosine:.6f}",
            "-" if c.top1_agreement is None else f"{c.top1_agreement:.2f}",
            ", ".join(c.providers),
            "pass" if c.passed else "FAIL",
        ]
        for c in result.checks
    ]
    headers = ["model", "precision", "max abs err", "max rel err", "cosine", "top1", "providers", "result"]
    typer.echo(text_table(headers, rows))
    typer.echo(f"{result.files_verified} files match bundle.json; onnxruntime {result.onnxruntime}")
    for c in result.checks:
        if not c.passed:
            typer.echo(f"{c.file}: " + "; ".join(c.failures), err=True)
