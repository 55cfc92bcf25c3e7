"""In-graph preprocessing: a model that takes camera-style uint8 pixels and normalises them itself.

    uint8 N×H×W×C ─ Transpose → N×C×H×W ─ Cast float32 ─ Div(pixel_scale) ─ Sub(mean) ─ Div(std) ─ the model

The pixels must already be resized and centre-cropped to the model's input size (what a camera pipeline or an
image library's thumbnailing gives); everything after that happens in the graph, so an app needs no numpy.
The float operations are the ones ``edgecnn.runtime.preprocess.preprocess`` does, in the same order, so the embedded
graph and the float graph fed by the runtime agree to float rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.artifact import Artifact
from ..core.card import ModelCard
from ..core.errors import ArtifactError, InputError
from ..runtime.compare import ParityReport

SUFFIX = ".nhwc_uint8.onnx"  # mobilenet_v2.fp32.onnx → mobilenet_v2.fp32.nhwc_uint8.onnx
PARITY_SAMPLES = 16


def embed_preprocessing(model, card: ModelCard):
    """Put the card's normalisation in front of ``model``; it then takes uint8 N×H×W×C pixels.

    Args:
        model: an ``onnx.ModelProto`` with one float N×C×H×W input (not modified).
        card: its card: ``pixel_scale``, ``mean``, ``std`` and the input name are read from it.

    Returns:
        ``(model, card)``: the new graph (input renamed nowhere: it keeps the card's input name) and the card
        with ``input_dtype="uint8"``, ``layout="NHWC"``, ``preprocess_embedded=True`` and the NHWC input shape.

    Raises:
        InputError: a model that already takes uint8, or whose input is not a 4-D float NCHW image batch.
    """
    import onnx

    if card.preprocess_embedded or card.input_dtype == "uint8":
        raise InputError(f"{card.model}: preprocessing is already embedded in this model")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    old, float_type, dims = _image_input(graph, card)
    name = old.name
    inner = f"{name}__normalized"  # the old input becomes an internal value fed by the new nodes
    _redirect_input(graph, name, inner, card)
    _prepend_normalisation(graph, name, inner, float_type, dims[1], card)

    nhwc = [dims[0], dims[2], dims[3], dims[1]]
    new_input = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, nhwc)
    position = list(graph.input).index(old)
    graph.input.remove(old)
    graph.input.insert(position, new_input)
    del graph.value_info[:]  # shapes of the old input's consumers are re-inferred by whoever needs them
    onnx.checker.check_model(out)

    card_shape = [
        d if d is not None else ("batch" if i == 0 else ("height" if i == 1 else "width")) for i, d in enumerate(nhwc)
    ]
    new_card = card.replace(input_shape=card_shape, layout="NHWC", input_dtype="uint8", preprocess_embedded=True)
    return out, new_card


def _image_input(graph, card: ModelCard):
    """The graph's one image input, its float element type and its dims (``None`` or a name where dynamic)."""
    from onnx import TensorProto

    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InputError(f"{card.model}: expected one image input, the graph has {len(inputs)}")
    old = inputs[0]
    tensor = old.type.tensor_type
    if tensor.elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16) or len(tensor.shape.dim) != 4:
        raise InputError(f"{card.model}: input '{old.name}' is not a float N×C×H×W batch")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
    channels = dims[1]
    if not isinstance(channels, int) or channels != len(card.mean) or channels != len(card.std):
        raise InputError(f"{card.model}: input has {channels} channels but the card has {len(card.mean)} means")
    return old, tensor.elem_type, dims


def _redirect_input(graph, name: str, inner: str, card: ModelCard) -> None:
    """Make every consumer of the input ``name`` read ``inner`` instead."""
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = inner
    for value in graph.output:
        if value.name == name:
            raise InputError(f"{card.model}: the input is also an output; nothing to embed into")


def _prepend_normalisation(graph, name: str, inner: str, float_type: int, channels: int, card: ModelCard) -> None:
    """uint8 NHWC ``name`` → Transpose → Cast → Div(pixel_scale) → Sub(mean) → Div(std) → ``inner``."""
    from onnx import TensorProto, helper, numpy_helper

    np_float = np.float16 if float_type == TensorProto.FLOAT16 else np.float32
    shape_c11 = (1, channels, 1, 1)
    scale = numpy_helper.from_array(np.array(card.pixel_scale, dtype=np_float), f"{name}__pixel_scale")
    mean = numpy_helper.from_array(np.asarray(card.mean, dtype=np_float).reshape(shape_c11), f"{name}__mean")
    std = numpy_helper.from_array(np.asarray(card.std, dtype=np_float).reshape(shape_c11), f"{name}__std")
    graph.initializer.extend([scale, mean, std])
    nodes = [
        # Transpose the uint8 pixels first: a quarter of the bytes of moving float32.
        helper.make_node("Transpose", [name], [f"{name}__nchw"], perm=[0, 3, 1, 2], name="preprocess/transpose"),
        helper.make_node("Cast", [f"{name}__nchw"], [f"{name}__float"], to=float_type, name="preprocess/cast"),
        helper.make_node("Div", [f"{name}__float", scale.name], [f"{name}__scaled"], name="preprocess/scale"),
        helper.make_node("Sub", [f"{name}__scaled", mean.name], [f"{name}__centered"], name="preprocess/mean"),
        helper.make_node("Div", [f"{name}__centered", std.name], [inner], name="preprocess/std"),
    ]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)


@dataclass(frozen=True)
class EmbedResult:
    """An embedded-preprocessing twin of a float artifact, checked against it."""

    path: Path
    source: Path
    card: ModelCard
    parity: ParityReport  # runtime.compare's record; JSON only where it is written (the manifest)


def embed_file(
    src: str | os.PathLike, dst: str | os.PathLike | None = None, *, samples: int = PARITY_SAMPLES
) -> EmbedResult:
    """Write the uint8-NHWC twin of an exported ``.onnx`` and check it against the float model.

    Parity: the same sample photographs go through the float model (via ``edgecnn.runtime.preprocess``) and as resized
    uint8 pixels through the twin; outputs are compared with the artifact's own precision's tolerances.

    Args:
        src: an edgecnn-exported ``.onnx`` (its card gives the normalisation).
        dst: where to write; default ``NAME.<precision>.nhwc_uint8.onnx`` beside ``src``. Written atomically.
        samples: how many photographs to compare on.

    Raises:
        ArtifactError: ``src`` unreadable or without an edgecnn card; InputError: a model that cannot take it.
    """
    import onnx

    from ..runtime.compare import compare

    src = Path(src)
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # protobuf errors for truncated or foreign files
        raise ArtifactError(
            f"{src}: not a readable ONNX model ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        ) from None
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
    if card is None:
        raise ArtifactError(f"{src.name} carries no edgecnn card (mean/std unknown); export it with 'edgecnn export'")
    embedded, new_card = embed_preprocessing(model, card)
    new_card.attach(embedded)
    dst = Path(dst) if dst is not None else src.with_name(src.name[: -len(".onnx")] + SUFFIX)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        onnx.save(embedded, str(tmp))
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()

    pixels, floats = _sample_pair(card, samples)
    ref = _run(src, floats)
    out = _run(dst, pixels)
    random_weights = (card.weights or {}).get("source") == "random"
    report = compare(ref, out, task=card.task, precision=card.precision, random_weights=random_weights)
    return EmbedResult(dst, src, new_card, report)


def embed_variants(folder: str | os.PathLike, artifacts, warnings: list | None = None) -> list:
    """The pipeline's hook: an embedded twin for each float-input artifact of an export, as manifest entries.

    Args:
        folder: the export (staging) folder holding the artifacts.
        artifacts: the pipeline's ``Artifact`` list so far.
        warnings: failed parity is appended here as a line.

    Returns:
        New ``Artifact`` entries ( same precision, file
        ``*.nhwc_uint8.onnx``).
    """
    from ..core.files import sha256_file

    folder = Path(folder)
    added = []
    for artifact in artifacts:
        if artifact.file.endswith(SUFFIX):
            continue
        res = embed_file(folder / artifact.file)
        if warnings is not None and res.parity.judged and not res.parity.passed:
            warnings.append(
                f"{res.path.name}: parity against {artifact.file} FAILED: " + "; ".join(res.parity.failures)
            )
        note = (
            f"preprocessing in the graph: takes uint8 {'x'.join(map(str, res.card.input_shape))} "
            f"NHWC pixels, already resized and cropped; parity against {artifact.file}"
        )
        added.append(
            Artifact(
                res.path.name,
                artifact.precision,
                res.path.stat().st_size,
                sha256_file(res.path),
                res.parity,
                (note,),
                reference=artifact.file,
            )
        )
    return added


def _sample_pair(card: ModelCard, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The same images as uint8 N×H×W×C pixels and as the float N×C×H×W the runtime would make of them."""
    from ..convert.calibration import sample_photos
    from ..runtime.preprocess import PreprocessParams, preprocess_uint8

    params = PreprocessParams.from_card(card)
    photos = sample_photos(count, seed=2)
    pixels = np.stack([preprocess_uint8(p, params) for p in photos])
    # The float input from the very same pixels, by preprocess()'s arithmetic after its resize and crop.
    x = pixels.astype(np.float32) / np.float32(params.pixel_scale)
    x = (x - np.asarray(params.mean, np.float32)) / np.asarray(params.std, np.float32)
    return pixels, np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _run(path: Path, arrays: np.ndarray) -> np.ndarray:
    """The first output of ``path`` on ``arrays``, on the CPU provider (``session.run_batched``)."""
    from ..runtime.runner import open_runner
    from ..runtime.session import run_batched

    return run_batched(open_runner(path, providers="cpu"), arrays)[0]
