"""``edgecnn bench``: time ONNX models, per provider session; ``--ep wasm|webgpu`` times them in a browser.

``bench_cmd`` parses; ``_route`` is the one place that says which options apply on which path: onnxruntime here
(``runtime.bench.benchmark_many`` with one ``BenchOptions``), or headless Chromium (``edgecnn.web.runners``, via
``cli.web.browser_bench``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, handle_errors, require_export_stack
from .options import (
    Browser,
    EachEp,
    EpDefaultCpu,
    Force,
    GraphOpt,
    InputSize,
    Json,
    JsonOut,
    Threads,
    provider_entries,
    refuse_existing,
    refuse_unused,
)

BROWSER_EPS = ("wasm", "webgpu")  # inside headless Chromium (onnxruntime-web), not onnxruntime providers
Batch = Annotated[str, typer.Option("--batch", help="Batch sizes, e.g. 1,8.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Untimed runs per configuration.")]
Runs = Annotated[int | None, typer.Option("--runs", help="Timed runs per configuration (default 50).")]
Seconds = Annotated[float | None, typer.Option("--seconds", help="Instead of --runs: seconds per configuration.")]
TorchBaseline = Annotated[
    bool, typer.Option("--torch", help="Also time the PyTorch eager model, side by side (needs the export stack).")
]
GraphOptOption = Annotated[GraphOpt, typer.Option("--graph-opt", help="onnxruntime graph optimization.")]
Md = Annotated[
    Path | None, typer.Option("--md", help="Write a markdown table (refused when it exists, unless --force).")
]


@app.command("bench")
@handle_errors
def bench_cmd(
    models: Annotated[list[str], typer.Argument(help="ONNX files to benchmark, timed side by side.")],
    ep: EpDefaultCpu = None,
    each_ep: EachEp = None,
    threads: Threads = None,
    browser: Browser = None,
    batch: Batch = "1",
    warmup: Warmup = 10,
    runs: Runs = None,
    seconds: Seconds = None,
    torch_baseline: TorchBaseline = False,
    input_size: InputSize = None,
    graph_opt: GraphOptOption = GraphOpt.all,
    as_json: Json = False,
    json_out: JsonOut = None,
    md_out: Md = None,
    force: Force = False,
) -> None:
    """Time models: latency percentiles, throughput, memory, per provider session (--ep, or --each-ep).

    .onnx, .tflite (LiteRT) and .pte (ExecuTorch) files are timed in the same interleaved rounds. For a .tflite,
    --ep cpu (or xnnpack) runs LiteRT's default CPU path with its XNNPACK delegate, --ep builtin its own kernels
    without a delegate; a .pte runs the delegate chosen at export (--ep cpu). --threads sets each runtime's threads.

    --ep wasm or webgpu times batch 1 of each file inside headless Chromium (--browser: which one). --json
    prints the results (docs/bench_schema.md); --force replaces the files --json-out / --md name.
    """
    from ..core.sizes import parse_hw
    from ..runtime.bench.options import check_counts

    check_counts(runs=runs, seconds=seconds, warmup=warmup, threads=threads, prefix="--")  # both paths, first
    _refuse_outputs(models, force, {"--json-out": json_out, "--md": md_out})
    unused = {"--each-ep": each_ep, "--torch": torch_baseline, "--batch": batch != "1", "--md": md_out}
    in_browser = _route(ep, {**unused, "--graph-opt": graph_opt is not GraphOpt.all})
    size = parse_hw(input_size, "--input-size") if input_size else None
    if in_browser:
        from .web import browser_bench

        return browser_bench(
            models,
            ep,
            threads,
            warmup,
            runs,
            seconds,
            input_size=size,
            as_json=as_json,
            json_out=json_out,
            browser=browser,
        )
    options = _bench_options(ep, each_ep, threads, batch, warmup, runs, seconds, torch_baseline, size, graph_opt)
    _bench_here(models, options, as_json=as_json, json_out=json_out, md_out=md_out)


def _route(ep: str | None, given: dict) -> bool:
    """True for the browser (``--ep wasm|webgpu``), where the options in ``given`` do not apply: refused, said."""
    if ep not in BROWSER_EPS:
        return False
    refuse_unused(given, f"--ep {ep} times batch 1 inside the browser: {{flags}} do(es) not apply there")
    return True


def _refuse_outputs(models: list[str], force: bool, files: dict[str, Path | None]) -> None:
    """A report never replaces a model it timed, nor an existing file without --force (``{flag: path}``)."""
    from ..core.paths import refuse_output_over_inputs

    for flag, path in files.items():
        if path is not None:
            refuse_output_over_inputs(path, models, flag)
    for flag, path in files.items():
        refuse_existing(path, force, flag)


def _bench_options(ep, each_ep, threads, batch, warmup, runs, seconds, torch_baseline, size, graph_opt):
    """The run, as one ``BenchOptions`` built here and passed whole."""
    from ..core.sizes import parse_ints
    from ..runtime.bench import BenchOptions

    if torch_baseline:  # the eager model runs on the torch side (the export stack)
        require_export_stack(("torch",))
        from ..convert import torch_runner

        torch_runner.register()  # its runner joins the factory from the torch side: runtime/ imports no torch
    return BenchOptions(
        providers=provider_entries(ep, each_ep),
        threads=threads,
        batch_sizes=parse_ints(batch, "--batch"),
        warmup=warmup,
        runs=runs,
        seconds=seconds,
        torch_baseline=torch_baseline,
        input_size=size,
        graph_opt=graph_opt.value,
    )


def _bench_here(models: list[str], options, *, as_json: bool, json_out: Path | None, md_out: Path | None) -> None:
    """Time with onnxruntime here; the table (on stderr with --json: stdout is the JSON's alone) and the files."""
    from ..core.files import write_text_atomic
    from ..runtime.bench import benchmark_many, report_dict, table_rows, to_markdown

    results = benchmark_many(models, options)
    report = json.dumps(report_dict(results), indent=2)
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    headers, rows = table_rows(results)
    say(text_table(headers, rows))
    say(f"\n{results[0].method}; threads: {results[0].threads.requested or 'default'}")
    for r in results:
        if r.node_assignment and len(r.node_assignment) > 1:
            say(f"{r.model_path}: nodes per provider " + ", ".join(f"{k} {v}" for k, v in r.node_assignment.items()))
    _say_layer_precisions(models, say)
    if json_out:
        say(f"wrote {write_text_atomic(json_out, report + chr(10))}")
    if md_out:
        say(f"wrote {write_text_atomic(md_out, to_markdown(results))}")
    if as_json:
        typer.echo(report)


def _say_layer_precisions(models: list[str], say) -> None:
    """For int8 files: which layers compute in int8 and which stayed in float (what the export chose)."""
    from ..runtime.layers import layer_precisions

    for model in dict.fromkeys(models):
        layers = layer_precisions(model)  # None without the onnx package (a device install)
        if layers is not None and layers.int8:
            say(f"{model}: layers {layers.summary()}")
