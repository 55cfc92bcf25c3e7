"""``edgecnn web``: a static web app folder for a model, an export or a bundle (``edgecnn.web.app``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, handle_errors
from .options import force_option, json_option


@app.command("web")
@handle_errors
def web_cmd(
    source: Path = typer.Argument(..., help="MODEL.onnx, an export folder or a bundle folder."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The web app folder (default: SOURCE's name + '_web' beside it)."
    ),
    force: bool = force_option("Replace an existing web app folder (only once the new one is complete)."),
    as_json: bool = json_option(),
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
    *,
    threads,
    warmup: int,
    runs,
    seconds,
    input_size,
    as_json: bool,
    json_out,
    force: bool,
    browser: str | None = None,
    unused: tuple = (),
) -> None:
    """``edgecnn bench --ep wasm|webgpu``: each model timed inside headless Chromium (edgecnn.web.runners)."""
    from ..core.errors import InputError
    from ..core.files import write_text_atomic
    from ..core.paths import refuse_output_over_inputs
    from ..core.sizes import parse_hw
    from ..core.text import text_table
    from ..runtime.bench.options import check_counts
    from ..web.runners import bench_browser
    from .options import refuse_existing

    if unused:  # said, not ignored: the browser bench times batch 1 of each file in one page
        raise InputError(f"--ep {ep} times batch 1 inside the browser: {', '.join(unused)} do(es) not apply there")
    check_counts(runs=runs, seconds=seconds, warmup=warmup, threads=threads, prefix="--")
    if json_out is not None:  # the report never replaces a model it timed
        refuse_output_over_inputs(json_out, models, "--json-out")
    refuse_existing(json_out, force, "--json-out")
    size = parse_hw(input_size, "--input-size") if input_size else None
    results = [
        bench_browser(
            m, ep=ep, threads=threads, warmup=warmup, runs=runs, seconds=seconds, input_size=size, browser=browser
        )
        for m in models
    ]
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo  # stdout is the JSON's alone
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
    report = json.dumps({"edgecnn_browser_bench": 1, "results": [x.to_dict() for x in results]}, indent=2)
    if json_out:
        say(f"wrote {write_text_atomic(json_out, report + chr(10))}")
    if as_json:
        typer.echo(report)
