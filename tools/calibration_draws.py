"""How far one int8 recipe's top-1 agreement with fp32 moves when its calibration set changes by one image.

    python tools/calibration_draws.py [--model mobilenet_v3_large] [--backend litert] [--draws 6] [--crops 48]

On random weights the fp32 scores are nearly tied, so which images int8 flips depends on small things, and one
recipe can agree more than another by chance. tools/peer_runtimes.py compares edgecnn's int8 with a runtime's
default recipe on one calibration set; this tool repeats that comparison over ``--draws`` calibration sets, each
the export's own set with one image left out (images 0, 1, …), so that a reader can tell a recipe's effect from the
draw. The model and images are peer_runtimes' (BatchNorm re-estimated, 128 judged images calibration never saw);
``--recipes`` names what is compared (``RECIPES``): edgecnn's plain int8 recipe for given weights (``pt2e.TRAINED``,
the form the export ships when no form passes parity on these weights), the same with LiteRT's hard-swish left whole
or without bias correction, and the runtime's own recipe (``Recipe()``: its quantizer as documented), the last named
being the baseline. Prints one row per draw, each recipe's mean and spread, and the paired mean differences.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import peer_recipes as recipes  # noqa: E402
import peer_runtimes  # noqa: E402

#: the recipes compared, by name (``--recipes``); the last is the baseline of the paired differences
RECIPES = {
    "edgecnn": lambda pt2e: pt2e.TRAINED,
    "edgecnn-whole-hardswish": lambda pt2e: replace(pt2e.TRAINED, split_hardswish=False),
    "edgecnn-no-bias-correction": lambda pt2e: pt2e.DEFAULT,
    "default": lambda pt2e: pt2e.Recipe(),
}


def export(backend: str, side: str, prepared, calibration: np.ndarray, path: Path) -> Path:
    """One int8 file of ``side``'s recipe through edgecnn's own PT2E exporter (float I/O on both sides)."""
    from edgecnn.convert.targets import pt2e, pte, tflite
    from edgecnn.convert.targets.request import TargetRequest

    recipe = RECIPES[side](pt2e)
    request = TargetRequest(prepared.model, prepared.parity[:1], path, "int8", calibration=calibration, recipe=recipe)
    (tflite if backend == "litert" else pte).export(request)
    return path


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v3_large")
    ap.add_argument("--backend", choices=("litert", "xnnpack"), default="litert")
    ap.add_argument("--draws", type=int, default=6, help="calibration sets: the export's, less image 0, 1, …")
    ap.add_argument("--crops", type=int, default=48, help="judged crops per photograph set, as peer_runtimes")
    ap.add_argument("--recipes", default="edgecnn,default", help=f"comma-separated, of: {', '.join(RECIPES)}")
    args = ap.parse_args(argv)
    sides = args.recipes.split(",")
    unknown = [s for s in sides if s not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}")
    torch.set_num_threads(recipes.THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepared = recipes.prepare(args.model, work, None, None)
        arrays = peer_runtimes.judged_images(prepared, args.crops)
        reference = peer_runtimes.reference_outputs(prepared, arrays)
        x = prepared.parity[:1]
        rows = []
        for draw in range(args.draws):
            calibration = np.delete(prepared.calibration, draw, axis=0)
            row = {}
            for side in sides:
                path = export(args.backend, side, prepared, calibration, work / f"{side}{draw}{_suffix(args.backend)}")
                contender = recipes.edgecnn_contender(str(path), x)
                row[side] = recipes.judge(contender, arrays, reference, prepared.card.task)["agreement"]
            rows.append(row)
            print(f"draw {draw} (calibration less image {draw}): " + ", ".join(f"{s} {row[s]:.3f}" for s in sides))
    table = np.array([[r[s] for s in sides] for r in rows])
    print(f"\n{args.model} on {args.backend}, {len(arrays)} judged images, {len(rows)} calibration draws")
    for k, side in enumerate(sides):
        print(
            f"  {side:8s} mean {table[:, k].mean():.3f}  sd {table[:, k].std(ddof=1):.3f}  "
            f"range {table[:, k].min():.3f}–{table[:, k].max():.3f}"
        )
    for k, side in enumerate(sides[:-1]):
        diff = table[:, k] - table[:, -1]
        print(f"  {side} − {sides[-1]}, paired by draw: mean {diff.mean():+.3f}, sd {diff.std(ddof=1):.3f}")
    return 0


def _suffix(backend: str) -> str:
    return ".tflite" if backend == "litert" else ".pte"


if __name__ == "__main__":
    sys.exit(main())
