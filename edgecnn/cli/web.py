"""``edgecnn web``: a static web app folder for a model, an export or a bundle (``edgecnn.web.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, handle_errors
from .options import Force, Json

WebOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="The web app folder (default: SOURCE's name + '_web' beside it).")
]


@app.command("web")
@handle_errors
def web_cmd(
    source: Annotated[Path, typer.Argument(help="MODEL.onnx, an export folder or a bundle folder.")],
    out: WebOut = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Write a self-contained static web app (onnxruntime-web, WASM or WebGPU) that classifies or segments images.

    Calls edgecnn.web.app.make_web_app. Serve the folder with any static server that sends the two
    cross-origin isolation headers in its _headers file (for WASM threads); it works offline.
    """
    from ..web.app import make_web_app

    target = out if out is not None else source.parent / f"{source.stem if source.is_file() else source.name}_web"
    result = make_web_app(source, target, force=force)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "folder": str(result.path),
                    "models": list(result.models),
                    "onnxruntime_web": result.onnxruntime_web,
                    "checks": [c.line() for c in result.checks],
                },
                indent=2,
            )
        )
        return
    for check in result.checks:
        typer.echo(f"onnxruntime-web {result.onnxruntime_web}: {check.line()}")
    typer.echo(
        f"wrote {result.path}/ (index.html, {len(result.models)} model(s)); try it: "
        f"python -m edgecnn.web.server {result.path}"
    )


def browser_bench(
    models: list,
    ep: str,
    threads: int | None,
    warmup: int,
    runs: int | None,
    seconds: float | None,
    *,
    input_size: tuple | None,
    as_json: bool,
    json_out: Path | None,
    browser: str | None = None,
) -> None:
    """``edgecnn bench --ep wasm|webgpu``: each model timed inside headless Chromium (``edgecnn.web.runners``).

    ``cli.bench`` has checked the options (counts, outputs, the ones that do not apply in a browser).
    """
    from ..core.files import write_text_atomic
    from ..web.runners import bench_browser

    results = [
        bench_browser(
            m, ep=ep, threads=threads, warmup=warmup, runs=runs, seconds=seconds, input_size=input_size, browser=browser
        )
        for m in models
    ]
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo  # stdout is the JSON's alone
    _say_browser_table(results, say)
    report = json.dumps({"edgecnn_browser_bench": 1, "results": [x.to_dict() for x in results]}, indent=2)
    if json_out:
        say(f"wrote {write_text_atomic(json_out, report + chr(10))}")
    if as_json:
        typer.echo(report)


def _say_browser_table(results: list, say) -> None:
    rows = [
        [
            Path(r.model_path).name,
            r.ep,
            "x".join(map(str, r.input_shape)),
            f"{r.create_ms:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.runs),
        ]
        for r in results
    ]
    say(text_table(["model", "ep", "input", "session ms", "p50 ms", "p90 ms", "p99 ms", "runs"], rows))
    r = results[0]
    say(
        f"\nonnxruntime-web {r.onnxruntime_web} in {r.browser.split('/')[-1]} (headless); threads {r.threads}, "
        f"SIMD {'yes' if r.simd else 'no'}, cross-origin isolated {'yes' if r.cross_origin_isolated else 'no'}; "
        f"{r.warmup} warm-up runs, then timed runs one after another"
    )
