"""int8 through PyTorch 2 Export quantization (PT2E), the route both ExecuTorch and LiteRT quantize by.

``quantize(model, example, calibration, backend)`` exports the eval-mode model with ``torch.export``, annotates it
with the backend's own quantizer (ExecuTorch's ``XNNPACKQuantizer``, litert-torch's ``PT2EQuantizer``: per-channel
symmetric int8 weights, per-tensor int8 activations), runs the calibration arrays through the observers one image at
a time (the files are batch 1), and converts. ``Recipe`` holds what edgecnn adds for accuracy
(``pt2e_passes``: clamps fused into their layer, bias correction; the activation observer; float modules). For
LiteRT every recipe but the runtime's bare default also quantizes the residual adds, which litert-torch's quantizer
misses in a ``torch.export`` graph (``pt2e_passes.annotate_adds``), and writes hard-swish as int8 operators LiteRT's
XNNPACK delegate takes (``pt2e_passes.split_hardswish``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

BACKENDS = ("xnnpack", "litert")
OBSERVERS = ("histogram", "minmax")


@dataclass(frozen=True)
class Recipe:
    """How the int8 model keeps its accuracy.

    Attributes:
        float_modules: qualified names of submodules left in float (the backend's quantizer skips them).
        fuse_clamps: quantize ``conv → ReLU6`` as one unit, observed after the clamp (``pt2e_passes``).
        bias_correction: take the mean output shift of each layer's int8 weights out of its bias.
        observer: the activation observer: ``"histogram"`` (both backends' default) or ``"minmax"``.
        quantize_adds: LiteRT only, with ``fuse_clamps`` or ``float_modules``: annotate the residual adds its
            quantizer misses (``pt2e_passes.annotate_adds``); XNNPACK's quantizer annotates them itself.
        split_hardswish: LiteRT only, likewise: write each hard-swish as int8 ``x · hardsigmoid(x)``, which LiteRT's
            XNNPACK delegate takes, where its int8 HARD_SWISH runs outside it (``pt2e_passes.split_hardswish``).
    """

    float_modules: tuple = ()
    fuse_clamps: bool = False
    bias_correction: bool = False
    observer: str = "histogram"
    quantize_adds: bool = True
    split_hardswish: bool = True

    def __post_init__(self) -> None:
        if self.observer not in OBSERVERS:
            raise ValueError(f"unknown activation observer {self.observer!r}; known: {', '.join(OBSERVERS)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "float_modules": list(self.float_modules)}


#: random weights: nothing to keep accurate, but fusing the clamps costs nothing (the same operators are lowered)
DEFAULT = Recipe(fuse_clamps=True)
#: trained weights: what tools/pt2e_study.py measured best on EfficientNet-Lite0 without model-specific float
#: layers (ImageNet weights, 512 crops: XNNPACK 0.490 with the backend default, 0.887 with this)
TRAINED = Recipe(fuse_clamps=True, bias_correction=True)
#: EfficientNet-Lite's stem and first four blocks (to the first block of stage 2), about the 28 ONNX nodes the ONNX
#: int8 keeps float: with min/max observers on top of TRAINED, Lite0 (ImageNet) kept 0.973 on the 512 crops on
#: XNNPACK, and ran faster (7.3 ms against the default's 9.7: XNNPACK's int8 3-channel stem and high-resolution
#: depthwise layers are slower than their fp32)
LITE_STEM = ("_conv_stem", "_bn0", "_blocks.0", "_blocks.1", "_blocks.2", "_blocks.3")


def trained_recipe(model) -> Recipe:
    """The recipe with a float stem for trained weights: for the EfficientNet-Lite layout its measured stem with
    min/max observers; for a model that names its stem (``float_stem``: MobileNetV2's and V3's layers at stride
    ≤ 4) that stem on ``TRAINED``; else ``TRAINED`` itself (no stem measured)."""
    names = {name for name, _ in model.named_modules()}
    if set(LITE_STEM) <= names:
        return replace(TRAINED, float_modules=LITE_STEM, observer="minmax")
    stem = tuple(getattr(model, "float_stem", ()))
    if stem and set(stem) <= names:
        return replace(TRAINED, float_modules=stem)
    return TRAINED


#: the forms without a float layer: ``pipeline.target_int8`` ships the fastest of them that passes parity
PLAIN_FORMS = ("int8", "float-adds")


def candidate_recipes(model, trained: bool, backend: str = "xnnpack") -> dict:
    """The int8 forms an export makes and times on the file's own runtime (``pipeline.target_int8``), by name:
    ``"int8"``, the plain recipe (``TRAINED`` for trained weights, else ``DEFAULT``); on LiteRT ``"float-adds"``, the
    same with its residual adds left as litert-torch's quantizer leaves them (a float ADD between DEQUANTIZE and
    QUANTIZE), because which is faster is the network's call (EfficientNet-Lite0's int8 adds kept it in one XNNPACK
    partition; on MobileNetV3-Large the two ran alike, 2.16 and 2.20 ms); and for trained weights on a layout whose
    float stem is known (``trained_recipe``: EfficientNet-Lite, MobileNetV2/V3) ``"stem"``, that form."""
    plain = TRAINED if trained else DEFAULT
    forms = {"int8": plain}
    if backend == "litert":
        forms["float-adds"] = replace(plain, quantize_adds=False)
    stem = trained_recipe(model) if trained else plain
    return forms | ({"stem": stem} if stem != plain else {})


def backend_config(backend: str, observer: str = "histogram"):
    """The backend's own int8 configuration (its docs' recommendation), with ``observer`` for activations."""
    if backend == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

        config = get_symmetric_quantization_config(is_per_channel=True)
    elif backend == "litert":
        from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    else:
        raise ValueError(f"unknown PT2E backend {backend!r}; known: {', '.join(BACKENDS)}")
    if observer == "histogram":
        return config
    from torchao.quantization.pt2e.observer import MinMaxObserver

    act = replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    return replace(config, input_activation=act, output_activation=act)


def make_quantizer(backend: str, recipe: Recipe):
    """The backend's own PT2E quantizer with ``recipe``'s observer, wrapped (``pt2e_passes.RecipeQuantizer``) to
    keep its float modules float and fuse clamps when the recipe asks, and on LiteRT to quantize the adds its
    quantizer leaves float and split hard-swish (``Recipe()`` stays the runtime's own default, the baseline the study
    compares to)."""
    config = backend_config(backend, recipe.observer)
    if backend == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

        quantizer = XNNPACKQuantizer().set_global(config)
    else:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

        quantizer = PT2EQuantizer().set_global(config)
    if not (recipe.float_modules or recipe.fuse_clamps):
        return quantizer
    from .pt2e_passes import RecipeQuantizer

    return RecipeQuantizer(
        quantizer,
        config,
        recipe.float_modules,
        recipe.fuse_clamps,
        quantize_adds=recipe.quantize_adds and backend == "litert",
        split=recipe.split_hardswish and backend == "litert",
    )


def quantize(
    model,
    example: np.ndarray,
    calibration: np.ndarray,
    backend: str,
    recipe: Recipe | None = None,
    *,
    trained: bool = False,
):
    """The converted (quantize/dequantize-annotated) ``GraphModule`` and the quantizer that annotated it.

    Args:
        model: the eval-mode float model.
        example: ``1×C×H×W`` float32, the static shape.
        calibration: ``N×C×H×W`` float32, preprocessed as the model's inputs.
        backend: ``"xnnpack"`` (ExecuTorch) or ``"litert"``.
        recipe: how to keep accuracy; ``None``: ``trained_recipe(model)`` with ``trained``, else ``DEFAULT``.
        trained: the weights were given (a checkpoint or a published set).
    """
    recipe = recipe or (trained_recipe(model) if trained else DEFAULT)
    prepared, quantizer = calibrate(model, example, calibration, backend, recipe)
    converted = convert(prepared, calibration, backend, recipe)
    converted.meta["edgecnn_recipe"] = recipe
    return converted, quantizer


def calibrate(model, example: np.ndarray, calibration: np.ndarray, backend: str, recipe: Recipe):
    """The exported model annotated by ``recipe``'s quantizer with its observers run over ``calibration`` (one
    image at a time: the files are batch 1), and the quantizer."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = make_quantizer(backend, recipe)
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    prepared = prepare_pt2e(torch.export.export(model.eval(), (x,)).module(), quantizer)
    with torch.no_grad():
        for row in calibration:
            prepared(torch.from_numpy(np.ascontiguousarray(row[None], dtype=np.float32)))
    return prepared, quantizer


def convert(prepared, calibration: np.ndarray, backend: str, recipe: Recipe):
    """The calibrated model converted to quantize/dequantize form, its biases corrected when ``recipe`` asks."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    # weights stay float behind their quantize/dequantize until bias correction has read them; LiteRT's converter
    # takes them so, XNNPACK's lowering wants them folded to int8 constants
    converted = convert_pt2e(prepared, fold_quantize=False)
    converted.meta["edgecnn_biases_corrected"] = 0
    if recipe.bias_correction:
        from .pt2e_passes import correct_biases

        converted.meta["edgecnn_biases_corrected"] = correct_biases(converted, calibration)
    if backend == "xnnpack":
        from torchao.quantization.pt2e.constant_fold import constant_fold
        from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

        constant_fold(converted, _quant_node_constraint)
    return converted


def record(converted, quantizer, recipe: Recipe | None = None) -> dict:
    """What the manifest says of an int8 made by ``quantize``: the recipe (``converted.meta["edgecnn_recipe"]``, the
    one ``quantize`` ran, when not given), and what it did (clamps fused, adds quantized by edgecnn rather than the
    backend, operators kept float, biases corrected)."""
    recipe = recipe or converted.meta["edgecnn_recipe"]
    return {
        **recipe.to_dict(),
        "clamps_fused": int(getattr(quantizer, "fused", 0)),
        "adds_quantized": int(getattr(quantizer, "adds", 0)),
        "hardswish_split": int(getattr(quantizer, "hardswish_split", 0)),
        "ops_kept_float": int(getattr(quantizer, "kept_float", 0)),
        "biases_corrected": int(converted.meta.get("edgecnn_biases_corrected", 0)),
    }
