"""``make_web_app``: a self-contained static web app folder for an exported model, and the check of what
onnxruntime-web can run.

The folder (``index.html``, ``app.js``, ``card.json``, ``labels.txt``, the model files, ``ort/`` with the pinned
onnxruntime-web's files, ``_headers``) works offline from any static server. ``card.json`` carries each
model's preprocessing read from its own edgecnn card, so ``app.js`` resizes, crops and normalises as the
Python ``Predictor`` does (or feeds the uint8 NHWC twin of ``--embed-preprocess``, which normalises inside).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.card import ModelCard
from ..core.documents import BUNDLE_JSON, read_bundle_json
from ..core.errors import ArtifactError, InputError
from ..core.files import staged_output
from ..core.paths import inside, refuse_folder_over_inputs
from ..core.sizes import check_input_shape, max_image_pixels
from .npm import ASSETS, node_modules, pinned_versions

#: onnxruntime-web's files the page loads: the WebGPU build's entry (it also runs WASM) and its WASM binary.
ORT_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
#: Operator types onnxruntime-web's WebGPU provider implements (its webgpu-operators list, for the pinned
#: 1.30); a model's other nodes run on WASM, with a copy across at each boundary.
WEBGPU_OPS = frozenset(
    """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Clip Concat
Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Einsum Elu Equal Erf Exp Expand Flatten Floor
FusedConv Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual
GridSample HardSigmoid HardSwish If InstanceNormalization LayerNormalization LeakyRelu Less LessOrEqual Log MatMul
MaxPool Mul Neg Not Or Pad Pow Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ScatterND Shape Sigmoid Sin Sinh Slice Softmax
Split Sqrt Squeeze Sub Tan Tanh ThresholdedRelu Tile Transpose Unsqueeze Where Xor
""".split()
)
WASM_DOMAINS = ("", "ai.onnx", "com.microsoft", "ai.onnx.ml")
MAX_OPSET = 23  # the newest default-domain opset the pinned onnxruntime(-web) implements
PROTOBUF_LIMIT = 2 << 30  # one .onnx file, without external data, cannot be larger
WASM_SAFE_BYTES = 1 << 30  # wasm32 has 4 GB of memory for weights, their copies and the arena


@dataclass(frozen=True)
class WebCheck:
    """What onnxruntime-web can do with one model file."""

    file: str
    size_mb: float
    opset: int
    op_types: tuple
    wasm_problems: tuple  # reasons it will not load or run on WASM
    webgpu_on_wasm: tuple  # operator types the WebGPU provider leaves to WASM

    @property
    def runs(self) -> bool:
        return not self.wasm_problems

    def line(self) -> str:
        head = f"{self.file} ({self.size_mb:.1f} MB, opset {self.opset}, {len(self.op_types)} operator types)"
        if self.wasm_problems:
            return f"{head}: onnxruntime-web cannot run it: {'; '.join(self.wasm_problems)}"
        gpu = (
            "WebGPU runs every node"
            if not self.webgpu_on_wasm
            else f"WebGPU leaves {', '.join(self.webgpu_on_wasm)} to WASM"
        )
        return f"{head}: WASM runs every node; {gpu}"


def _load(path: Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...: all mean "not a model"
        raise ArtifactError(f"{path}: not a readable ONNX model ({exc})") from None


def check_web(path: str | os.PathLike) -> WebCheck:
    """Check a model for what onnxruntime-web cannot run: operators per backend, size limits, external data."""
    path = Path(path)
    model = _load(path)
    size = path.stat().st_size
    ops = sorted({(n.domain, n.op_type) for n in model.graph.node})
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    problems = []
    custom = sorted({f"{d}.{t}" for d, t in ops if d not in WASM_DOMAINS})
    if custom:
        problems.append(f"custom operators {', '.join(custom)}")
    if opset > MAX_OPSET:
        problems.append(f"opset {opset} is newer than the {MAX_OPSET} it implements: export with --opset {MAX_OPSET}")
    if any(t.data_location == 1 for t in model.graph.initializer):  # onnx.TensorProto.EXTERNAL
        problems.append("weights in external data files: re-export as one file (the page loads one .onnx)")
    if size >= PROTOBUF_LIMIT:
        problems.append("over protobuf's 2 GB limit")
    elif size > WASM_SAFE_BYTES:
        problems.append("over 1 GB: too large for wasm32's 4 GB memory once loaded")
    on_wasm = tuple(
        sorted(
            {t for d, t in ops if d in ("", "ai.onnx") and t not in WEBGPU_OPS}
            | {f"{d}.{t}" for d, t in ops if d not in ("", "ai.onnx")}
        )
    )
    return WebCheck(path.name, round(size / 1e6, 1), opset, tuple(t for _, t in ops), tuple(problems), on_wasm)


def read_card(path: Path) -> ModelCard:
    props = {p.key: p.value for p in _load(path).metadata_props}
    card = ModelCard.from_metadata(props, path.name)
    if card is None:
        raise ArtifactError(f"{path.name} has no edgecnn card (metadata); export it with 'edgecnn export'")
    return card


def model_input(path: Path, input_size: tuple | None = None) -> tuple[list, str]:
    """``([1, C, H, W] or [1, H, W, C], dtype)`` of a model's first input: fixed axes as in the graph, dynamic
    height/width from ``input_size`` or the card's crop, the batch 1."""
    model = _load(path)
    initializers = {t.name for t in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    tensor = graph_input.type.tensor_type
    dtype = {1: "float32", 2: "uint8"}.get(tensor.elem_type)
    if dtype is None:
        raise InputError(f"{path.name}: input '{graph_input.name}' is not float32 or uint8; the browser feeds those")
    props = {p.key: p.value for p in model.metadata_props}
    card = ModelCard.from_metadata(props, path.name)
    hw = tuple(input_size) if input_size else (tuple(card.crop) if card else None)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    nhwc = card is not None and card.layout == "NHWC"
    hw_axes = (1, 2) if nhwc else (2, 3)
    dims[0] = 1
    for axis, value in zip(hw_axes, hw or (None, None)):
        if dims[axis] is None:
            dims[axis] = int(value) if value else None
    if any(d is None for d in dims):
        raise InputError(f"{path.name}: input shape has dynamic axes; give --input-size HxW")
    check_input_shape(dims, f"{path.name}: input '{graph_input.name}'")  # what the page or the bench will allocate
    return dims, dtype


@dataclass(frozen=True)
class WebApp:
    """What ``make_web_app`` wrote."""

    path: Path
    models: tuple  # file names, the page's default first
    checks: tuple  # one WebCheck per model
    onnxruntime_web: str


def _sources(source: Path) -> tuple[list[Path], Path | None]:
    """The model files of a .onnx, a bundle or an export folder, and a labels.txt when there is one."""
    if source.is_file() and source.suffix == ".onnx":
        return [source], None
    if source.is_file() and source.suffix in (".tflite", ".pte"):
        raise InputError(
            f"{source.name}: the page runs ONNX files on onnxruntime-web; a {source.suffix} file runs on "
            f"{'LiteRT' if source.suffix == '.tflite' else 'ExecuTorch'}, not in this page: pass the export's .onnx"
        )
    if (source / BUNDLE_JSON).is_file():
        manifest = read_bundle_json(source)  # types and keys checked: a malformed one is one line naming the key
        files = [inside(source, e["file"], "model file") for e in manifest["models"]]
        return files, inside(source, manifest.get("labels", {}).get("file", "labels.txt"), "labels file")
    if source.is_dir():
        files = sorted(source.glob("*.onnx"))
        for path in files:  # a model symlinked from outside the folder is refused, never copied into the site
            inside(source, path.name, "model file")
        if files:
            return files, None
    raise InputError(f"{source}: not an .onnx file, a bundle or an export folder with .onnx files")


def _model_entry(path: Path, card: ModelCard) -> dict:
    channels = 1 if len(card.mean) == 1 else 3
    return {
        "file": path.name,
        "precision": card.precision,
        "task": card.task,
        "input_name": card.input_name,
        "output_name": card.output_name,
        "input_dtype": card.input_dtype,
        "layout": card.layout,
        "preprocess_embedded": card.preprocess_embedded,
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "preprocess": {
            "resize": card.resize,
            "crop": list(card.crop),
            "mean": list(card.mean),
            "std": list(card.std),
            "pixel_scale": card.pixel_scale,
            "channels": channels,
            "color_order": card.color_order,
            "interpolation": card.interpolation,
            "max_image_pixels": max_image_pixels(),
        },
    }  # preprocess.mjs refuses larger images


def make_web_app(source: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False) -> WebApp:
    """Write a static web app folder for a model file, a bundle or an export folder.

    Raises:
        InputError: ``source`` holds no model. ArtifactError: a model without an edgecnn card, one
        onnxruntime-web cannot run, or ``out_dir`` not empty (without ``force``).
    """
    refuse_folder_over_inputs(out_dir, [source])  # before anything is read or installed: never over its own source
    files, labels_file = _sources(Path(source))
    cards = {p: read_card(p) for p in files}
    # the default model: the float model at full precision, whose preprocessing the page does in JS
    files.sort(key=lambda p: (cards[p].preprocess_embedded, cards[p].precision != "fp32", p.name))
    checks = tuple(check_web(p) for p in files)
    for p in files:  # each model's input for one image (model_input checks it against the size limit)
        model_input(p)
    blocked = [c.line() for c in checks if not c.runs]
    if blocked:
        raise ArtifactError(blocked[0])
    base = cards[files[0]]
    labels = (
        labels_file.read_text(encoding="utf-8").splitlines()
        if labels_file and labels_file.is_file()
        else base.labels or [str(i) for i in range(base.num_classes)]
    )
    version = pinned_versions()["onnxruntime-web"]
    dist = node_modules() / "onnxruntime-web" / "dist"
    card = {
        "edgecnn_web": 1,
        "model": base.model,
        "task": base.task,
        "labels": "labels.txt",
        "onnxruntime_web": version,
        "models": [_model_entry(p, cards[p]) for p in files],
        "checks": [c.line() for c in checks],
    }
    with staged_output(out_dir, force, writer="web", inputs=[source]) as staging:
        for p in files:
            shutil.copyfile(p, staging / p.name)
        (staging / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(dist / name, staging / "ort" / name)
        for name in ("index.html", "app.js", "preprocess.mjs", "_headers"):
            shutil.copyfile(ASSETS / name, staging / name)
        (staging / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        (staging / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return WebApp(Path(out_dir), tuple(p.name for p in files), checks, version)
