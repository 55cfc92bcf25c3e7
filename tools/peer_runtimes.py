"""edgecnn's .onnx, .tflite and .pte beside each runtime's own default recipe: latency, agreement with PyTorch.

    python tools/peer_runtimes.py --models mobilenet_v2 --seconds 0.5 --runs 3 --input-size 64   # develop
    python tools/peer_runtimes.py                                  # the full table → docs/BENCHMARKS.md
    python tools/peer_bench.py --runtimes …                        # the same, from peer_bench

One process per model (``--child``), so that no model's threads, allocator or XNNPACK pool state reach the next.
In it: the model is built as ``edgecnn export`` builds it (random weights: BatchNorm re-estimated on the export's
own calibration images and saved as a checkpoint, which the export then loads: same weights on both sides;
EfficientNet-Lite0: its ImageNet weights); ``edgecnn export NAME --format onnx,tflite,pte --int8`` runs as a fresh
process; the runtimes' default recipes (tools/peer_recipes.py) are made from the same model and the same
calibration arrays. Every file is judged against PyTorch fp32 (top-1 agreement — pixel agreement for U-Net — and
cosine) on images calibration never saw: the export's held-out parity images and ``--crops`` crops each of the
calibration photographs (another seed) and of the two photographs it leaves out. Then all files are timed in one
interleaved run (edgecnn.runtime.bench's ``schedule``: 2 threads, batch 1, default input size), ``--runs`` times;
the table gives each run's p50 and ratio and their median.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import peer_choice as choice  # noqa: E402
import peer_recipes as recipes  # noqa: E402

from edgecnn.core.files import write_text_atomic  # noqa: E402
from edgecnn.core.text import markdown_table  # noqa: E402

MODELS = ("mobilenet_v2", "resnet50", "mobilenet_v3_large", "googlenet", "unet", "efficientnet_lite0")
PUBLISHED = {"efficientnet_lite0": "imagenet"}  # models measured with published weights; the others random init
RUNTIMES = dict(executorch="ExecuTorch .pte", litert="LiteRT .tflite", onnxruntime="onnxruntime .onnx")
RUNTIMES["openvino"] = "OpenVINO .onnx"
TARGET = 1.05  # issue 30: edgecnn's int8 no slower than the runtime's own default int8 (median ratio)
START, END = "<!-- peer_runtimes:start -->", "<!-- peer_runtimes:end -->"
AFTER = "<!-- peer_bench:end -->"  # the section goes after tools/peer_bench.py's
#: edgecnn's files timed, (format, precision) → the runtime its suffix opens it on
EDGECNN_FILES = {
    (fmt, precision): runtime
    for fmt, runtime in (("onnx", "onnxruntime"), ("tflite", "litert"), ("pte", "executorch"))
    for precision in ("fp32", "int8")
}


def judged_images(prepared: recipes.Prepared, crops: int) -> np.ndarray:
    """The export's parity images, then ``crops`` crops (seed 7) of the calibration photographs and as many of
    the two photographs it leaves out: everything calibration never saw."""
    from edgecnn.convert.calibration import SKIMAGE_HELD_OUT, default_photo_files, more_photo_files, sample_photos
    from edgecnn.runtime.preprocess import preprocess

    images = []
    if crops:
        images = sample_photos(crops, seed=7, files=default_photo_files())
        unseen = more_photo_files(SKIMAGE_HELD_OUT)  # [] without scikit-image: then the seen photographs alone
        images += sample_photos(crops, seed=7, files=unseen) if unseen else []
    extra = [preprocess(im, prepared.card) for im in images]
    return np.concatenate([prepared.parity, np.stack(extra)]) if extra else prepared.parity


def reference_outputs(prepared: recipes.Prepared, arrays: np.ndarray) -> np.ndarray:
    """PyTorch fp32's outputs on ``arrays``, one image at a time (batch 1, as the files run)."""
    import torch

    with torch.no_grad():
        return np.concatenate([prepared.model(torch.from_numpy(a[None])).numpy() for a in arrays])


def make_files(name: str, prepared: recipes.Prepared, work: Path, input_size: str | None) -> tuple[dict, dict]:
    """edgecnn's export and every default recipe: ``{contender key: (kind, path)}`` and what failed, in one line
    each (a converter that cannot take a model is a result, not the end of the run)."""
    example = prepared.parity[:1]
    files, failed = {}, {}
    print(f"[{name}] edgecnn export --format onnx,tflite,pte --int8 …", flush=True)
    try:
        ours = recipes.export_edgecnn(name, prepared, input_size, work / "edgecnn")
    except RuntimeError as exc:  # no manifest at all: the defaults are still measured, the row says why
        ours = {"wall_s": None, "exit": None, "files": {}, "timings_s": None}
        failed["edgecnn"] = str(exc)[:300]
    for (fmt, precision), runtime in EDGECNN_FILES.items():
        found = ours["files"].get((fmt, precision))
        key = f"{runtime}/edgecnn/{precision}"
        if found:
            files[key] = ("edgecnn", found["path"])
        else:
            failed[key] = f"edgecnn export wrote no {precision} .{fmt} (exit {ours['exit']})"
    for precision in ("fp32", "int8"):  # the .onnx files on --ep openvino too: compare may recommend either
        if f"onnxruntime/edgecnn/{precision}" in files:
            files[f"openvino/edgecnn/{precision}"] = ("edgecnn-openvino", files[f"onnxruntime/edgecnn/{precision}"][1])
    peers = work / "defaults"
    peers.mkdir(parents=True, exist_ok=True)
    makers = (
        ("executorch", recipes.executorch_default, "executorch"),
        ("litert", recipes.litert_default, "litert"),
        ("onnxruntime", recipes.onnx_default, "onnxruntime"),
    )
    made = {}
    for runtime, maker, kind in makers:
        print(f"[{name}] {runtime}'s default recipe …", flush=True)
        try:
            made[runtime] = maker(prepared.model, example, prepared.calibration, peers)
        except Exception as exc:  # noqa: BLE001 - any converter failure is reported as the result it is
            failed[f"{runtime}/default"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            continue
        for precision, record in made[runtime].items():
            files[f"{runtime}/default/{precision}"] = (kind, record["path"])
    if "onnxruntime/default/int8" in files:
        files["openvino/default/int8"] = ("openvino", files["onnxruntime/default/int8"][1])
    notes = {"export_wall_s": ours["wall_s"], "export_exit": ours["exit"], "failed": failed}
    notes["records"] = {f"{f}/{p}": r["record"] for (f, p), r in ours["files"].items()}
    notes["make_s"] = {f"{rt}/{p}": r["make_s"] for rt, recs in made.items() for p, r in recs.items()}
    return files, notes


def contender(kind: str, path: str, x: np.ndarray) -> recipes.Contender:
    """Open ``path`` as ``kind`` says: edgecnn's runner (on the CPU provider or ``--ep openvino``), or a
    runtime's own Python API for a default recipe's file."""
    if kind == "edgecnn":
        return recipes.edgecnn_contender(path, x)
    if kind == "edgecnn-openvino":
        return recipes.edgecnn_contender(path, x, providers="openvino")
    return {
        "litert": recipes.litert_contender,
        "onnxruntime": recipes.onnxruntime_contender,
        "executorch": recipes.executorch_contender,
        "openvino": recipes.openvino_contender,
    }[kind](path, x)


def measure(name: str, work: Path, args) -> dict:
    """One model, in this process: the files, their judging, ``args.runs`` interleaved timing runs."""
    import torch

    from edgecnn.runtime.bench import SETTLE_S, Contestant, schedule, time_once

    torch.set_num_threads(recipes.THREADS)
    prepared = recipes.prepare(name, work, args.input_size, PUBLISHED.get(name))
    files, notes = make_files(name, prepared, work, args.input_size)
    arrays = judged_images(prepared, args.crops)
    reference = reference_outputs(prepared, arrays)
    x = np.ascontiguousarray(prepared.parity[:1])
    opened, judged = {}, {}
    print(f"[{name}] judging {len(files)} files on {len(arrays)} images …", flush=True)
    for key, (kind, path) in files.items():
        try:
            opened[key] = contender(kind, path, x)
            judged[key] = recipes.judge(opened[key], arrays, reference, prepared.card.task)
        except Exception as exc:  # noqa: BLE001 - a file its runtime refuses is a result, said in one line
            notes["failed"][key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            opened.pop(key, None)
    notes.update(golden_verdicts(opened, work / "edgecnn", prepared.card.task))
    runs = []
    for run in range(args.runs):
        print(f"[{name}] timing run {run + 1}/{args.runs} …", flush=True)
        contest = {}
        for key, c in opened.items():
            warm = [time_once(c.bound) for _ in range(args.warmup)]
            runs_wanted = args.seconds * 1000.0 / max(float(np.median(warm)), 1e-3)
            contest[key] = Contestant(c.bound, runs=int(max(20, min(5000, runs_wanted))), keep=c.keep)
        schedule(list(contest.values()), args.rounds, SETTLE_S)
        runs.append({k: float(np.median(c.samples)) for k, c in contest.items()})
    notes.update(judged=judged, p50_ms=runs, input=list(x.shape))
    return {"model": name, "task": prepared.card.task, **notes}


def golden_verdicts(opened: dict, folder: Path, task: str) -> dict:
    """compare's recommendation over edgecnn's folder, and each contender judged as compare judges a row
    (tools/peer_choice.py); nothing when the export wrote no golden outputs."""
    from edgecnn.runtime.golden import GOLDEN_FILE, load_golden

    if not (folder / GOLDEN_FILE).is_file():
        return {}
    golden = load_golden(folder / GOLDEN_FILE)
    verdicts = {key: choice.judge_golden(c, golden, task, key.rsplit("/", 1)[1]) for key, c in opened.items()}
    print(f"[{folder.parent.name}] edgecnn compare {folder.name} …", flush=True)
    return {"golden": verdicts, "compare": choice.recommend(folder)}


def _ratios(result: dict, runtime: str, precision: str) -> list[float]:
    """edgecnn / default p50 in each run where both were timed."""
    ours, theirs = f"{runtime}/edgecnn/{precision}", f"{runtime}/default/{precision}"
    return [r[ours] / r[theirs] for r in result["p50_ms"] if ours in r and theirs in r]


def _ms(result: dict, key: str) -> str:
    times = [r[key] for r in result["p50_ms"] if key in r]
    return f"{np.median(times):.2f}" if times else "—"


def _judged(result: dict, key: str, field: str) -> str:
    got = result["judged"].get(key)
    return f"{got[field]:.3f}" if got else "—"


def _verdict(result: dict, runtime: str, ratios: list) -> str:
    """PASS when the median ratio meets the target at equal or better agreement with fp32: edgecnn's agreement is
    at least the default's, or, where the runs kept each image's verdict, their paired difference's 95% bootstrap
    interval reaches 0 (no loss shown: said with the interval, as "PASS (within noise …)")."""
    if not ratios:
        return "not measured"
    ours, theirs = (result["judged"].get(f"{runtime}/{side}/int8") for side in ("edgecnn", "default"))
    fast = float(np.median(ratios)) <= TARGET
    accurate = ours is not None and theirs is not None and ours["agreement"] >= theirs["agreement"]
    interval = _paired(ours, theirs) if ours is not None and theirs is not None and not accurate else None
    noise = interval is not None and interval[2] >= 0
    if fast and accurate:
        return "PASS"
    shown = "Δ {:+.3f}, 95% [{:+.3f}, {:+.3f}]".format(*interval) if interval else ""
    if fast and noise:
        return f"PASS (within noise: {shown})"
    said = (("slower", not fast), ("less agreement", not (accurate or noise)), (shown, bool(shown)))
    return "FAIL (" + ", ".join(w for w, bad in said if bad) + ")"


def _paired(ours: dict, theirs: dict) -> tuple[float, float, float] | None:
    """edgecnn − default agreement over the same images, with its paired bootstrap interval (as ``edgecnn eval``
    compares two files); ``None`` when a run kept no per-image verdicts."""
    from edgecnn.runtime.evaluate import paired_bootstrap

    if not (ours.get("hits") and theirs.get("hits")) or len(ours["hits"]) != len(theirs["hits"]):
        return None
    return paired_bootstrap(np.asarray(theirs["hits"]), np.asarray(ours["hits"]))


def rows(results: list) -> list[list[str]]:
    out = []
    for r in results:
        if "error" in r:
            out.append([r["model"], r["error"]] + [""] * 9)
            continue
        for runtime, shown in RUNTIMES.items():
            ratios = _ratios(r, runtime, "int8")
            each = ", ".join(f"{q:.2f}" for q in ratios)
            fp32 = [_ms(r, f"{runtime}/{side}/fp32") for side in ("edgecnn", "default")]
            out.append(
                [
                    r["model"],
                    shown,
                    _ms(r, f"{runtime}/edgecnn/int8"),
                    _ms(r, f"{runtime}/default/int8"),
                    f"**{np.median(ratios):.2f}** ({each})" if ratios else "—",
                    _verdict(r, runtime, ratios),
                    " / ".join(_judged(r, f"{runtime}/{s}/int8", "agreement") for s in ("edgecnn", "default")),
                    " / ".join(_judged(r, f"{runtime}/{s}/int8", "cosine") for s in ("edgecnn", "default")),
                    " / ".join(fp32) if fp32 != ["—", "—"] else "—",
                    _judged(r, f"{runtime}/edgecnn/fp32", "cosine"),
                    f"{np.median(_ratios(r, runtime, 'fp32')):.2f}" if _ratios(r, runtime, "fp32") else "—",
                ]
            )
    return out


HEADERS = (
    "model",
    "runtime",
    "int8 ms edgecnn",
    "int8 ms default",
    "edgecnn / default int8: median (each run)",
    f"≤ {TARGET} at ≥ agreement (or a paired 95% interval reaching 0)",
    "int8 agreement edgecnn / default",
    "int8 cosine edgecnn / default",
    "fp32 ms edgecnn / default",
    "fp32 cosine edgecnn",
    "fp32 edgecnn / default",
)


def notes(results: list) -> list[str]:
    """What failed, and what edgecnn's own manifest says of each file (parity verdict, delegation)."""
    lines = []
    for r in results:
        for key, why in (r.get("failed") or {}).items():
            lines.append(f"- {r['model']} {key}: {why}")
        for key, record in (r.get("records") or {}).items():
            parity = record.get("parity") or {}
            said = [f"parity {'passed' if parity.get('passed') else 'FAILED'}"] if parity else []
            said += [n for n in record.get("notes") or () if "partition" in n or "float" in n][:2]
            if said:
                lines.append(f"- {r['model']} edgecnn {key}: " + "; ".join(said))
        if r.get("export_wall_s"):  # making the files: edgecnn's includes its checks on every runtime
            made = ", ".join(f"{k} {v:.0f} s" for k, v in (r.get("make_s") or {}).items())
            lines.append(f"- {r['model']} making: edgecnn export (6 files, checked) {r['export_wall_s']:.0f} s; {made}")
    return lines


def markdown(results: list, meta: dict) -> str:
    v = meta["versions"]
    judged = max((j["images"] for r in results for j in (r.get("judged") or {}).values()), default=0)
    size = f"{meta['input_size']} (development size)" if meta["input_size"] else "each model's default input size"
    lines = [
        START,
        "",
        "## Runtimes: edgecnn's .onnx, .tflite, .pte beside each runtime's own recipe (`tools/peer_runtimes.py`)",
        "",
        "Generated by `python tools/peer_runtimes.py` — do not edit by hand; run the tool again.",
        "",
    ]
    if meta["input_size"] or meta["runs"] < 3:  # said at the top, so that no one quotes its numbers
        lines += ["**A development run** (small input or < 3 runs): the table's form, not the measurement.", ""]
    missing = [m for m in MODELS if m not in {r["model"] for r in results}]
    if missing:  # a partial table says what it leaves out, so that no one reads it as the whole answer
        lines += [f"**Not yet measured here**: {', '.join(missing)} (`--models` of a later run).", ""]
    lines += [
        f"- **Date**: {meta['date']}; **CPU**: {meta['cpu']}, {meta['cores']} logical cores of a shared VM: absolute "
        "times differ between machines and sessions; read the ratios (one interleaved run per model).",
        "- **Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- **Latency**: p50 ms, batch 1, {recipes.THREADS} threads, {size}; per model one process, every file "
        f"warmed up then timed interleaved ({meta['rounds']} rounds, rotating order, a 100 ms pause and one "
        f"untimed run before each chunk, about {meta['seconds']:g} s each), {meta['runs']} such runs; the ms "
        "columns are the median over runs, the ratio column gives the median of the runs' ratios and each run's.",
        "- **edgecnn**: `edgecnn export NAME --format onnx,tflite,pte --int8` (fresh process, on the same weights: "
        "random init with BatchNorm re-estimated on its calibration images, saved and passed as `--weights`; "
        "EfficientNet-Lite0 `--weights imagenet`), each file opened with `open_runner(path, threads=2)`.",
        "- **default**: ExecuTorch `torch.export` → `to_edge_transform_and_lower([XnnpackPartitioner()])`, int8 "
        "with `XNNPACKQuantizer(get_symmetric_quantization_config(is_per_channel=True))`; LiteRT "
        "`litert_torch.convert`, int8 with its `PT2EQuantizer(get_symmetric_quantization_config(is_per_channel="
        "True, is_dynamic=False))` — its int8 file takes int8 input: timed on input quantized beforehand; "
        "onnxruntime `torch.onnx.export` + onnxsim + `quantize_static` defaults (QDQ), and OpenVINO's own runtime "
        "on that file (f32 and latency hints) against edgecnn's int8 .onnx on `--ep openvino`. All calibrated on "
        "the same arrays as edgecnn's export; the peers run through their runtime's own Python API "
        "(onnxruntime's `InferenceSession`, LiteRT's `Interpreter`, ExecuTorch's `Runtime`).",
        f"- **agreement, cosine**: with PyTorch fp32, on {judged} images calibration never saw per model: the "
        f"export's held-out parity images, {meta['crops']} other crops of its photographs and {meta['crops']} "
        "crops of the two photographs it leaves out; top-1 agreement (U-Net: pixel agreement). Random weights "
        "have no accuracy: there agreement says how far int8 moved the decisions, not how right they are.",
        "",
        *markdown_table(HEADERS, rows(results), text_columns=2),
        *choice.section(results),
    ]
    extra = notes(results)
    lines += (
        [
            "",
            "What failed, edgecnn's own verdict on each file, and the time each side took to make its files:",
            "",
            *extra,
        ]
        if extra
        else []
    )
    return "\n".join(lines + ["", END]) + "\n"


def write_doc(doc: Path, section: str) -> None:
    """Replace the marked section; the first time, put it right after tools/peer_bench.py's section."""
    text = doc.read_text() if doc.is_file() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + section.rstrip("\n") + text[text.index(END) + len(END) :]
    elif AFTER in text:
        cut = text.index(AFTER) + len(AFTER)
        text = text[:cut] + "\n\n" + section.rstrip("\n") + text[cut:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(doc, text)


def run_child(name: str, args) -> dict:
    """``measure`` in a fresh process (this script with ``--child``): its JSON result."""
    with tempfile.TemporaryDirectory(prefix=f"peer_runtimes_{name}_") as tmp:
        work = (args.work or Path(tmp)) / name
        work.mkdir(parents=True, exist_ok=True)
        out = work / "result.json"
        cmd = [sys.executable, __file__, "--child", name, "--result", str(out), "--work", str(work.parent)]
        cmd += ["--seconds", str(args.seconds), "--rounds", str(args.rounds), "--runs", str(args.runs)]
        cmd += ["--crops", str(args.crops), "--warmup", str(args.warmup)]
        cmd += ["--input-size", args.input_size] if args.input_size else []
        done = subprocess.run(cmd, cwd=ROOT)
        if done.returncode != 0 or not out.is_file():
            return {"model": name, "error": f"the child process for {name} exited {done.returncode}"}
        return json.loads(out.read_text())


def versions() -> dict:
    """What ran: every one of these is needed to make or run a file of the table, so each is installed."""
    from importlib.metadata import version

    import openvino  # its runtime's own version string: the wheel's metadata name varies

    from edgecnn.core.version import __version__  # the source's own: an editable install's metadata can be stale

    out = {p: version(p) for p in ("torch", "executorch", "torchao", "litert-torch", "ai-edge-litert")}
    openvino_version = openvino.get_version().split("-")[0]
    return {"edgecnn": __version__, **out, "onnxruntime": version("onnxruntime"), "openvino": openvino_version}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed work per file and run (default 3 s)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaving rounds per run (default 10)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved timing runs per model (default 3)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs before each timing run (default 10)")
    ap.add_argument("--crops", type=int, default=48, help="judged crops per photograph set (default 48)")
    ap.add_argument("--input-size", help="S or HxW (default: each model's own; small sizes for development)")
    ap.add_argument("--work", type=Path, help="folder for the files (default: a temporary one)")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--no-doc", action="store_true", help="print only")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--render", type=Path, nargs="+", help="only write the table from --json files of earlier runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        result = measure(args.child, args.work / args.child, args)
        args.result.write_text(json.dumps(result, indent=2, default=str))
        return 0
    if args.render:  # models measured in separate calls, one table (the first file's machine and settings)
        saved = [json.loads(p.read_text()) for p in args.render]
        write_doc(args.doc, markdown([r for s in saved for r in s["results"]], saved[0]["meta"]))
        print(f"wrote {args.doc}")
        return 0
    if args.runs < 3:
        print("note: fewer than 3 runs: the median is not the one the issue asks for", file=sys.stderr)
    results = [run_child(m.strip(), args) for m in args.models.split(",") if m.strip()]
    from edgecnn.convert.int8.speed import vnni_label
    from edgecnn.runtime.bench import machine_info

    m = machine_info()
    meta = {"date": m.date, "cpu": f"{m.cpu_model} ({vnni_label()})", "cores": m.logical_cores}
    meta.update(versions=versions(), seconds=args.seconds, rounds=args.rounds, runs=args.runs, crops=args.crops)
    meta["input_size"] = args.input_size
    text = markdown(results, meta)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    if not args.no_doc:
        write_doc(args.doc, text)
        print(f"wrote {args.doc}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
