"""``edgecnn predict``, ``bench``, ``providers``, ``selftest``: the device commands, torch-free.

They need numpy, onnxruntime and Pillow only (``bench --torch`` excepted: it times the PyTorch model too).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import typer

from ..core.text import text_table
from .app import app, fail, handle_errors, require_export_stack
from .options import (
    each_ep_option,
    ep_option,
    force_option,
    input_size_option,
    json_option,
    json_out_option,
    provider_entries,
    refuse_existing,
    session_providers,
    threads_option,
)


@app.command("predict")
@handle_errors
def predict_cmd(
    model: str = typer.Argument(..., help="An exported .onnx (or .ort) file."),
    inputs: list[str] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Classes to show per image (classifiers)."),
    as_json: bool = json_option("the predictions"),
    save_masks: str | None = typer.Option(
        None, "--save-masks", help="Folder to write masks to as palette PNGs (segmentation models)."
    ),
    ep: str = ep_option(),
    threads: int | None = threads_option(),
    mean: str | None = typer.Option(
        None,
        "--mean",
        help="Per-channel mean, e.g. 0.485,0.456,0.406 (for "
        ".onnx files without edgecnn metadata; overrides the card's).",
    ),
    std: str | None = typer.Option(None, "--std", help="Per-channel std, e.g. 0.229,0.224,0.225."),
    crop: str | None = typer.Option(None, "--crop", help="Model input size HxW (or S), centre-cropped."),
    labels: Path | None = typer.Option(None, "--labels", help="Text file with one class name per line."),
    use_ray: bool = typer.Option(
        False,
        "--ray",
        help="Run on Ray Data (edgecnn[ray]): one SOURCE (folder, glob "
        "or URI such as s3://...), rows to --output; resumable. See docs/SCALE.md.",
    ),
    address: str | None = typer.Option(None, "--address", help="With --ray: the cluster (default: local Ray)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="With --ray: inference actors."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="With --ray: images per batch."),
    output: Path | None = typer.Option(None, "--output", help="With --ray: the Parquet folder (FILE.parquet)."),
    force: bool = force_option("With --save-masks: replace files that have a mask's name (never an input)."),
) -> None:
    """Classify or segment images with an exported model, through the torch-free runtime.

    Broken images are reported and skipped; the exit status is 1 when any was skipped.
    """
    from ..core.errors import InputError
    from ..core.files import output_lock
    from ..runtime.predictor import Predictor
    from .predict_io import expand_inputs, mask_plan, preprocess_overrides

    if use_ray:  # Ray Data instead of the loop below (edgecnn.scale; masks go beside the output)
        from .scale import predict_with_ray

        return predict_with_ray(
            model,
            inputs,
            output=output,
            address=address,
            workers=workers,
            batch_size=batch_size,
            top_k=top_k,
            providers=session_providers(ep),
            threads=threads,
            overrides=preprocess_overrides(mean, std, crop, labels),
            as_json=as_json,
            save_masks=save_masks,
        )
    if output is not None or address is not None or workers is not None or batch_size is not None:
        raise InputError("--output, --address, --workers and --batch-size apply with --ray only; add --ray")

    predictor = Predictor(
        model,
        providers=session_providers(ep),
        intra_op_threads=threads,
        **preprocess_overrides(mean, std, crop, labels),
    )
    if save_masks is not None and predictor.task != "segmentation":
        raise InputError(f"--save-masks is for segmentation models; {Path(model).name} is a {predictor.task} model")
    files, any_folder = expand_inputs(inputs)
    mask_dir = Path(save_masks) if save_masks is not None else None
    plan = mask_plan(files, mask_dir, force) if mask_dir is not None else {}
    with output_lock(mask_dir) if mask_dir is not None else contextlib.nullcontext():  # one writer per folder
        if mask_dir is not None:
            mask_dir.mkdir(parents=True, exist_ok=True)
        results, failed = _predict_all(predictor, files, any_folder, top_k, plan)
    for item in failed:
        typer.echo(f"skipped {item['error']}", err=True)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "model": str(model),
                    "task": predictor.task,
                    "providers": predictor.providers,
                    "results": results,
                    "failed": failed,
                },
                indent=2,
            )
        )
    elif predictor.task == "classification":
        rows = [
            [r["file"] if i == 0 else "", str(i + 1), p["label"], f"{p['probability']:.4f}"]
            for r in results
            for i, p in enumerate(r["predictions"])
        ]
        typer.echo(text_table(["image", "rank", "label", "probability"], rows))
    else:
        rows = [
            [
                r["file"],
                "x".join(map(str, r["mask_shape"])),
                ", ".join(f"{k} {v:.0%}" for k, v in r["class_fractions"].items()),
                r["mask_file"] or "-",
            ]
            for r in results
        ]
        typer.echo(text_table(["image", "mask", "classes", "saved"], rows))
    if failed:
        typer.echo(f"error: {len(failed)} of {len(files)} images could not be read (listed above)", err=True)
        raise typer.Exit(1)


def _predict_all(predictor, files: list, any_folder: bool, top_k: int, mask_plan: dict) -> tuple[list, list]:
    """Run the images in the predictor's batch size; broken ones are collected, not raised."""
    import numpy as np

    from ..core.errors import InputError
    from ..runtime.preprocess import load_image
    from .predict_io import mask_entry

    results: list[dict] = []
    failed: list[dict] = []
    bar = (
        typer.progressbar(length=len(files), label="predicting", file=sys.stderr)
        if any_folder
        else contextlib.nullcontext()
    )
    with bar:
        for start in range(0, len(files), predictor.batch_size):
            chunk = files[start : start + predictor.batch_size]
            loaded = []
            for path in chunk:
                try:  # each photo decoded, made model input (crop-sized) and let go: one decoded at a time
                    loaded.append((path, predictor.preprocess(load_image(path))))
                except InputError as exc:  # reported after the bar, which a message mid-bar would garble
                    failed.append({"file": str(path), "error": str(exc)})
            outputs = (
                predictor.postprocess(predictor.run(np.concatenate([x for _, x in loaded])), top_k) if loaded else []
            )
            for (path, _), out in zip(loaded, outputs):
                if predictor.task == "classification":
                    results.append(
                        {
                            "file": str(path),
                            "predictions": [{"label": label, "probability": prob} for label, prob in out],
                        }
                    )
                else:
                    results.append(mask_entry(path, out, predictor.labels, mask_plan.get(path)))
            if any_folder:
                bar.update(len(chunk))
    return results, failed


@app.command("providers")
@handle_errors
def providers_cmd(as_json: bool = json_option("the providers")) -> None:
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


@app.command("bench")
@handle_errors
def bench_cmd(
    models: list[str] = typer.Argument(..., help="ONNX files to benchmark, timed side by side."),
    ep: str | None = ep_option(None, " Default: cpu."),
    each_ep: str | None = each_ep_option(),
    threads: int | None = threads_option(),
    browser: str | None = typer.Option(
        None, "--browser", help="With --ep wasm/webgpu: the Chromium to drive (default: the system's)."
    ),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, e.g. 1,8."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs per configuration."),
    runs: int | None = typer.Option(None, "--runs", help="Timed runs per configuration (default 50)."),
    seconds: float | None = typer.Option(None, "--seconds", help="Instead of --runs: seconds per configuration."),
    torch_baseline: bool = typer.Option(
        False, "--torch", help="Also time the PyTorch eager model, side by side (needs the export stack)."
    ),
    input_size: str | None = input_size_option("S or HxW, for models with dynamic height/width."),
    graph_opt: str = typer.Option(
        "all", "--graph-opt", help="onnxruntime graph optimization: disable/basic/extended/all."
    ),
    as_json: bool = json_option("the results (docs/bench_schema.md)"),
    json_out: Path | None = json_out_option(),
    md_out: Path | None = typer.Option(
        None, "--md", help="Write a markdown table (refused when it exists, unless --force)."
    ),
    force: bool = force_option("Replace the files --json-out / --md name."),
) -> None:
    """Time ONNX models: latency percentiles, throughput, memory, per provider session (--ep, or --each-ep)."""
    from ..core.files import write_text_atomic
    from ..core.paths import refuse_output_over_inputs
    from ..core.sizes import parse_hw, parse_ints
    from ..runtime.bench import benchmark_many, report_dict, table_rows, to_markdown
    from ..runtime.bench.options import check_counts

    check_counts(runs=runs, seconds=seconds, warmup=warmup, threads=threads, prefix="--")  # both paths, first
    for path, flag in ((json_out, "--json-out"), (md_out, "--md")):
        if path is not None:  # a report never replaces a model it timed
            refuse_output_over_inputs(path, models, flag)
    if ep in ("wasm", "webgpu"):  # inside headless Chromium (onnxruntime-web), not an onnxruntime provider
        from .web import browser_bench

        unused = [
            f
            for f, v in (
                ("--each-ep", each_ep),
                ("--torch", torch_baseline),
                ("--batch", batch != "1"),
                ("--md", md_out),
                ("--graph-opt", graph_opt != "all"),
            )
            if v
        ]
        return browser_bench(
            models,
            ep,
            threads=threads,
            warmup=warmup,
            runs=runs,
            seconds=seconds,
            unused=unused,
            input_size=input_size,
            as_json=as_json,
            json_out=json_out,
            force=force,
            browser=browser,
        )
    if torch_baseline:
        require_export_stack(("torch",))
    refuse_existing(json_out, force, "--json-out")
    refuse_existing(md_out, force, "--md")
    entries = provider_entries(ep, each_ep)
    size = parse_hw(input_size, "--input-size") if input_size else None
    results = benchmark_many(
        models,
        providers=entries,
        threads=threads,
        batch_sizes=parse_ints(batch, "--batch"),
        warmup=warmup,
        runs=runs,
        seconds=seconds,
        torch_baseline=torch_baseline,
        input_size=size,
        graph_opt=graph_opt,
    )
    report = json.dumps(report_dict(results), indent=2)
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo  # stdout is the JSON's alone
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


@app.command("selftest")
@handle_errors
def selftest_cmd(
    bundle: Path = typer.Argument(
        ..., help="A bundle folder (made by 'edgecnn export NAME --bundle') or its bundle.json."
    ),
    ep: str = ep_option("cpu", " Test the one your app uses (--runtime browser: wasm or webgpu)."),
    runtime: str = typer.Option(
        "python",
        "--runtime",
        help="Where the models run: python (onnxruntime), node "
        "(onnxruntime-node) or browser (onnxruntime-web in headless Chromium).",
    ),
    browser: str | None = typer.Option(None, "--browser", help="The Chromium to drive (default: the system's)."),
    as_json: bool = json_option(),
) -> None:
    """Prove this runtime reproduces a bundle's golden outputs: files against bundle.json, then each model.

    Exit status 0 when every model matches within its precision's tolerance, 1 when one does not.
    """
    from ..runtime.selftest import selftest

    if runtime == "python":
        result = selftest(bundle, providers=session_providers(ep))
    else:
        from ..web.runners import selftest_in

        result = selftest_in(runtime, bundle, ep=ep, browser=browser)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
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
        typer.echo(
            text_table(
                ["model", "precision", "max abs err", "max rel err", "cosine", "top1", "providers", "result"], rows
            )
        )
        typer.echo(f"{result.files_verified} files match bundle.json; onnxruntime {result.onnxruntime}")
        for c in result.checks:
            if not c.passed:
                typer.echo(f"{c.file}: " + "; ".join(c.failures), err=True)
    if not result.passed:
        fail("self-test FAILED: this runtime does not reproduce the golden outputs", 1)
