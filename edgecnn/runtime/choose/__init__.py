"""Which file to ship: every exported file on every runtime this machine has, judged, timed and scored in one table,
and the fastest one that is still right.

    from edgecnn.runtime.choose import ChooseOptions, choose

    result = choose("exported/mobilenet_v2", ChooseOptions(data="val/"))
    print(result.to_markdown())          # the table, the CPU line, the recommendation, why not the faster ones
    Path("compare.svg").write_text(result.to_svg())

Torch-free (numpy, onnxruntime, Pillow; LiteRT with its extra), so it runs on the target itself over a folder of
copied files: each file is judged against the golden outputs beside it (``runtime.golden``) with its precision's
tolerances, as at export. The torch side (``edgecnn.pipeline.choose``) exports what is missing, then calls this.

The steps, one module each:

- ``source``: the candidates of an export folder (``manifest.json``) or a bundle (``bundle.json``) and their
  golden data; embedded-preprocessing twins left out (they take other inputs);
- ``measure``: one row per file × provider entry (``.onnx``) or per file (``.tflite`` on LiteRT, ``.pte`` on
  ExecuTorch, ``.mlpackage`` converted but not run off macOS); each run on the golden inputs and judged
  (``check_row``); every row that ran timed in ONE interleaved benchmark (``bench.benchmark_pairs``) and, with
  ``data``, scored by ``runtime.evaluate`` with a paired bootstrap interval against fp32 .onnx on CPU;
- ``decide``: the recommendation and the why-not list;
- ``result`` (``Row``, ``ChooseResult``), ``report`` (Markdown), ``plot`` (SVG).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict

from ...core.errors import InputError
from ..bench.machine import cpu_has_vnni, machine_info
from .decide import decide, why_not
from .measure import check_row, plan_rows, score_rows, time_rows
from .options import FORMATS, PRECISIONS, STATUSES, ChooseOptions, default_eps
from .result import ChooseResult, Row
from .source import Source, read_source

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "STATUSES",
    "ChooseOptions",
    "ChooseResult",
    "Row",
    "choose",
    "decide",
    "why_not",
]


def choose(
    folder: str | os.PathLike, options: ChooseOptions | None = None, progress: Callable[[str], object] | None = None
) -> ChooseResult:
    """Compare every file of an export folder or bundle on every runtime here, and recommend one.

    Args:
        folder: an export folder (``manifest.json`` and ``golden.npz``) or a bundle (``bundle.json``).
        options: a ``ChooseOptions``.
        progress: called with a short line as each step starts.

    Returns:
        ``ChooseResult``; ``recommended`` is ``None`` when no row passes.

    Raises:
        InputError: bad options or data, a folder that is neither an export nor a bundle.
        ArtifactError: a manifest or golden file that cannot be read.
    """
    options = options or ChooseOptions()
    say = progress or (lambda _line: None)
    source = read_source(folder)
    planned, notes = _select(source, options)
    rows, paths = [], [c.path for _, c in planned]
    for row, c in planned:
        say(f"parity: {row.label}")
        rows.append(check_row(row, c.path, source.golden, source.task, source.random_weights, options.threads))
    say("timing every row that ran, interleaved")
    rows, machine, method = time_rows(rows, paths, options)
    baseline, images = None, None
    if options.data is not None:
        say(f"accuracy on {options.data}")
        rows, base, images = score_rows(rows, paths, options)
        baseline = rows[base].label if base is not None else None
    decision = decide(rows, options.margin, options.data is not None, baseline)
    return ChooseResult(
        folder=str(source.folder),
        kind=source.kind,
        model=source.model,
        task=source.task,
        rows=tuple(rows),
        recommended=rows[decision.recommended] if decision.recommended is not None else None,
        why_not=decision.why_not,
        left_out=source.left_out,
        margin=float(options.margin),
        data=str(options.data) if options.data is not None else None,
        baseline=baseline,
        images=images,
        golden={"images": int(len(source.golden.inputs)), "source": source.golden.source},
        machine={**(machine or asdict(machine_info())), "vnni": cpu_has_vnni()},
        method=method,
        notes=notes,
    )


def _select(source: Source, options: ChooseOptions) -> tuple[list, tuple]:
    """The rows the options ask for, and a note for each asked format or precision the folder does not hold.

    Raises:
        InputError: no file of the folder is asked for.
    """
    wanted = [
        c
        for c in source.candidates
        if (options.formats is None or c.format in options.formats)
        and (options.precisions is None or c.precision in options.precisions)
    ]
    if not wanted:
        held = ", ".join(f"{c.file} ({c.format} {c.precision})" for c in source.candidates) or "no candidate file"
        raise InputError(f"{source.folder}: no file matches the formats and precisions asked; it holds {held}")
    notes = [
        f"asked for {what} {name}: {source.folder} holds none"
        for what, names, have in (
            ("format", options.formats, {c.format for c in source.candidates}),
            ("precision", options.precisions, {c.precision for c in source.candidates}),
        )
        for name in names or ()
        if name not in have
    ]
    return plan_rows(tuple(wanted), options.eps or default_eps()), tuple(notes)
