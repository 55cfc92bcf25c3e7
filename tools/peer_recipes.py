"""The runtimes' own default recipes, and the contenders tools/peer_runtimes.py times and judges.

What a user writes for each runtime without edgecnn, from the same eval-mode model and the same calibration arrays
as ``edgecnn export`` (its docs' recommended settings, nothing tuned):

* ExecuTorch fp32: ``torch.export`` → ``to_edge_transform_and_lower(..., [XnnpackPartitioner()])`` →
  ``.to_executorch()``; int8: ``XNNPACKQuantizer`` with ``get_symmetric_quantization_config(is_per_channel=True)``,
  torchao's ``prepare_pt2e`` / ``convert_pt2e``, then the same lowering;
* LiteRT fp32: ``litert_torch.convert(model, (x,))``; int8: litert-torch's ``PT2EQuantizer`` with
  ``get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)``, the same PT2E calls, then
  ``convert(..., quant_config=QuantConfig(pt2e_quantizer=...))``. That file takes and returns int8 tensors: it is
  fed input quantized with the scale and zero point its input tensor states (timed on that int8 input);
* onnxruntime: ``torch.onnx.export`` (defaults) + ``onnxsim`` + ``quantize_static`` (defaults: QDQ, per-tensor),
  tools/peer_bench.py's plain path, on these weights; OpenVINO's own runtime runs that same int8 file.

A *contender* is one file on one runtime: ``predict(x) → output`` (one image, float in and out, for the judging)
and ``bound`` (the closure timed: one run on a fixed input, as ``Runner.bind`` gives for edgecnn's files). The
peers run through their runtime's plain Python API, as their users call it, so that edgecnn's files, timed through
``open_runner``, carry any cost its runner adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


@dataclass
class Prepared:
    """One model as both sides get it: the eval-mode model, its card, the export's calibration and parity
    images, and the ``--weights`` that gives edgecnn's export the same weights."""

    model: object
    card: object
    calibration: np.ndarray
    parity: np.ndarray
    weights: str


def prepare(name: str, folder: Path, input_size: str | None, weights: str | None) -> Prepared:
    """Build ``name`` as the export does; random weights get their BatchNorm re-estimated on the export's own
    first calibration images and are saved as a checkpoint, which edgecnn's export then loads: edgecnn builds its
    own model in another process, and a checkpoint is the one way both sides surely hold the same weights."""
    import torch

    from edgecnn.models.registry import get_spec
    from edgecnn.pipeline import steps
    from edgecnn.pipeline.images import load_images
    from edgecnn.pipeline.options import check_input_size, options_from_keywords

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{name}.weights.pt"
    # the options the export will run with: the checkpoint (or published) weights choose its calibration count
    options = options_from_keywords(weights=weights or str(ckpt), int8=True, input_size=input_size)
    spec = get_spec(name)
    options = options.replace(input_size=check_input_size(options.input_size, spec))
    run = steps.Run(None)
    built = steps.build_model(spec, options.replace(weights=weights), run, None)
    images = load_images(built.card, options, [])
    if weights is None:
        steps.reestimate_batchnorm(built.model, images.calibration, run)
        torch.save(built.model.state_dict(), ckpt)
    return Prepared(built.model.eval(), built.card, images.calibration, images.parity, weights or str(ckpt))


def export_edgecnn(name: str, prepared: Prepared, input_size: str | None, folder: Path) -> dict:
    """``edgecnn export NAME --format onnx,tflite,pte --int8 --weights W`` in a fresh process: its files, wall
    time and each artifact's manifest record."""
    cli = Path(sys.executable).with_name("edgecnn")
    cmd = [str(cli), "export", name, "--format", "onnx,tflite,pte", "--int8", "-w", prepared.weights]
    cmd += ["-o", str(folder), "--force"] + (["--input-size", input_size] if input_size else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():  # a parity failure still writes its manifest (exit 1): only this is fatal
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"edgecnn export {name} wrote no manifest (exit {done.returncode}): {said}")
    manifest = json.loads(manifest_path.read_text())
    files = {}
    for a in manifest.get("artifacts", []):
        fmt = Path(a["file"]).suffix.lstrip(".")
        if a.get("precision") in ("fp32", "int8") and ".nhwc" not in a["file"]:
            files[(fmt, a["precision"])] = {"path": str(folder / a["file"]), "record": a}
    return {"wall_s": wall, "exit": done.returncode, "files": files, "timings_s": manifest.get("timings_s")}


def _calibrated(prepared_graph, calibration: np.ndarray) -> None:
    import torch

    with torch.no_grad():
        for row in calibration:  # batch 1, as the files are
            prepared_graph(torch.from_numpy(np.ascontiguousarray(row[None])))


def executorch_default(model, example: np.ndarray, calibration: np.ndarray, folder: Path) -> dict:
    """ExecuTorch's documented XNNPACK recipe, fp32 and int8: the .pte paths and each one's making time."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    x = (torch.from_numpy(example),)
    out = {}
    for precision in ("fp32", "int8"):
        t0 = time.perf_counter()
        graph = torch.export.export(model, x)
        if precision == "int8":
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(graph.module(), quantizer)
            _calibrated(prepared, calibration)
            graph = torch.export.export(convert_pt2e(prepared), x)
        program = to_edge_transform_and_lower(graph, partitioner=[XnnpackPartitioner()]).to_executorch()
        path = folder / f"executorch.{precision}.pte"
        path.write_bytes(program.buffer)
        out[precision] = {"path": str(path), "make_s": time.perf_counter() - t0}
    return out


def litert_default(model, example: np.ndarray, calibration: np.ndarray, folder: Path) -> dict:
    """litert-torch's documented conversion, fp32 and its PT2E int8: the .tflite paths and making times."""
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    x = (torch.from_numpy(example),)
    out = {}
    t0 = time.perf_counter()
    litert_torch.convert(model, x).export(str(folder / "litert.fp32.tflite"))
    out["fp32"] = {"path": str(folder / "litert.fp32.tflite"), "make_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    quantizer = PT2EQuantizer().set_global(config)
    prepared = prepare_pt2e(torch.export.export(model, x).module(), quantizer)
    _calibrated(prepared, calibration)
    converted = convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(converted, x, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(folder / "litert.int8.tflite"))
    out["int8"] = {"path": str(folder / "litert.int8.tflite"), "make_s": time.perf_counter() - t0}
    return out


def onnx_default(model, example: np.ndarray, calibration: np.ndarray, folder: Path) -> dict:
    """tools/peer_bench.py's plain path on these weights: torch.onnx + onnxsim + quantize_static's defaults."""
    import onnx
    import onnxsim
    import torch
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.rows = iter({input_name: row[None]} for row in calibration)

        def get_next(self):
            return next(self.rows, None)

    t0 = time.perf_counter()
    raw, fp32, int8 = (folder / f"ort.{p}.onnx" for p in ("raw", "fp32", "int8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(example),), str(raw))
    onnx.save(onnxsim.simplify(onnx.load(str(raw)))[0], str(fp32))
    quantize_static(str(fp32), str(int8), Images(onnx.load(str(fp32)).graph.input[0].name))
    return {"int8": {"path": str(int8), "make_s": time.perf_counter() - t0}}


@dataclass
class Contender:
    """One file on one runtime: ``predict`` (one float image → float output, for the judging) and ``bound``
    (one run on the fixed input, the closure timed); ``keep`` holds what they need alive."""

    predict: object
    bound: object
    keep: object = None


def edgecnn_contender(path: str, x: np.ndarray, providers: str = "cpu") -> Contender:
    """edgecnn's file as its users open it: ``open_runner`` (the suffix picks the runtime), timed via ``bind``."""
    from edgecnn.runtime.runner import open_runner

    runner = open_runner(path, providers=providers, threads=THREADS)
    name = runner.inputs[0].name
    return Contender(lambda a: runner.run({name: a})[0], runner.bind({name: x}), runner)


def litert_contender(path: str, x: np.ndarray) -> Contender:
    """LiteRT's interpreter as its docs call it (XNNPACK applied by default), 2 threads. An int8-I/O file is fed
    input quantized with its input tensor's scale and zero point, and its output dequantized for the judging."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=THREADS)
    interp.allocate_tensors()
    src, dst = interp.get_input_details()[0], interp.get_output_details()[0]

    def to_input(a: np.ndarray) -> np.ndarray:
        scale, zero = src["quantization"]
        if np.dtype(src["dtype"]).kind not in "iu" or not scale:
            return a.astype(src["dtype"])
        info = np.iinfo(src["dtype"])
        return np.clip(np.round(a / scale) + zero, info.min, info.max).astype(src["dtype"])

    def from_output(y: np.ndarray) -> np.ndarray:
        scale, zero = dst["quantization"]
        return (y.astype(np.float32) - zero) * scale if np.dtype(dst["dtype"]).kind in "iu" and scale else y

    def predict(a: np.ndarray) -> np.ndarray:
        interp.set_tensor(src["index"], to_input(a))
        interp.invoke()
        return from_output(interp.get_tensor(dst["index"]))

    fixed = to_input(x)  # quantized once, outside the timed call (an app feeding int8 pixels does it upstream)

    def bound():
        interp.set_tensor(src["index"], fixed)
        interp.invoke()
        return interp.get_tensor(dst["index"])

    return Contender(predict, bound, interp)


def executorch_contender(path: str, x: np.ndarray) -> Contender:
    """ExecuTorch's Python runtime as its docs call it, XNNPACK's thread pool set to 2 threads."""
    import torch
    from executorch.runtime import Runtime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from executorch.extension.pybindings import portable_lib
    if portable_lib._threadpool_get_thread_count() != THREADS:  # the pool is the process's, shared with edgecnn's
        portable_lib._unsafe_reset_threadpool(THREADS)
    method = Runtime.get().load_program(Path(path)).load_method("forward")
    fixed = [torch.from_numpy(np.ascontiguousarray(x))]
    return Contender(
        lambda a: method.execute([torch.from_numpy(np.ascontiguousarray(a))])[0].numpy(),
        lambda: method.execute(fixed),
        method,
    )


def onnxruntime_contender(path: str, x: np.ndarray) -> Contender:
    """onnxruntime's InferenceSession as its docs call it: CPU provider, 2 intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return Contender(lambda a: session.run(None, {name: a})[0], lambda: session.run(None, {name: x}), session)


def openvino_contender(path: str, x: np.ndarray) -> Contender:
    """OpenVINO's own runtime on an ONNX file, set up as tools/peer_bench.py does (f32 hint, latency hint)."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        path,
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()
    return Contender(
        lambda a: np.array(request.infer({0: a})[0]),
        lambda: request.infer({0: x}),
        (compiled, request),
    )


def judge(contender: Contender, arrays: np.ndarray, reference: np.ndarray, task: str) -> dict:
    """Top-1 (pixel, for segmentation) agreement and cosine of the contender's outputs with PyTorch fp32's, and
    each image's agreement (1/0, or its share of pixels) as ``hits``."""
    from edgecnn.convert.int8.agreement import agreement

    outputs = np.concatenate([np.asarray(contender.predict(a[None]), np.float32) for a in arrays])
    got = agreement(reference, outputs.reshape(reference.shape), task)
    top1 = got.pixel_agreement if task == "segmentation" else got.top1_agreement
    same = np.asarray(reference).argmax(1) == outputs.reshape(reference.shape).argmax(1)  # per image (per pixel)
    hits = same.reshape(len(arrays), -1).mean(1)  # kept per image: two files' agreement is compared pair by pair
    return {
        "agreement": float(top1),
        "cosine": float(got.cosine),
        "images": int(len(arrays)),
        "hits": [round(float(h), 5) for h in hits],
    }
