"""Static int8 quantization (QDQ) of the twin, from a calibration cache.

int8 is static QDQ with per-channel S8 weights and U8 activations. The weights are 7-bit by default (−64 … 64,
onnxruntime's ``reduce_range``): x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply U8×S8 with
``VPMADDUBSW``, which adds pairs of products into int16 and saturates: two weights near ±127 against activations
near 255 overflow it and the layer's output is silently wrong (measured on a Zen 3 EPYC: a 4-class head's output
SQNR 5.6 dB with 8-bit weights, 32.1 dB with 7-bit; VNNI CPUs and ARM accumulate in int32 and do not saturate).
7-bit weights keep every pair within int16 on every CPU, at the same kernels and speed; depthwise convolutions keep
8 bits (their kernel accumulates in int32: ``per_channel.full_range_weights``). 8-bit weights everywhere
(``weight_bits=8``) are for a target known to have VNNI or to be ARM.

The twin and its int8 form come from ``twin`` (``quantization_twin``, ``int8_form``), the calibration cache from
``calibrate``. ``quantize_int8`` runs ``quantize_static`` from the cache (per-channel weights by
``per_channel.to_per_channel`` from its quick per-tensor output), then the scale folding (``twin.fold_scales``),
then ``qdq_float.float_fallback`` for the nodes kept in float, bias correction (``bias_correction``: the mean shift
of weight rounding taken back out of each int8 layer's bias) and dead-node clean-up.

(Dynamic quantization, ConvInteger, is 2–11× slower than fp32 for CNNs on onnxruntime's CPU provider, and
S8 activations are slower than U8 on x86: neither is offered.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from ..fp16 import toposort
from ..ort_tools import quiet
from .bias_correction import correct_bias
from .calibrate import PERCENTILE, calibration_method
from .options import WEIGHT_BITS
from .per_channel import covered, full_range_overrides, to_per_channel
from .qdq_float import float_fallback, remove_dead
from .twin import fold_scales


@dataclass(frozen=True)
class QuantizeReport:
    """What ``quantize_int8`` did beyond onnxruntime's quantizer."""

    scales_folded: int
    float_nodes: tuple  # nodes rewired to compute in float
    biases_corrected: int = 0  # layers whose bias took back the mean shift of their weight rounding


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    reader=None,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    exclude_nodes: tuple = (),
    extra_options: dict | None = None,
    calibration_cache: str | Path | None = None,
    bias_means: dict | None = None,
    weight_bits: int = 7,
) -> QuantizeReport:
    """Static QDQ quantization of ``src`` (pre-processed, in ``int8_form``) to ``dst``.

    Args:
        reader: a fresh CalibrationDataReader (they are single-use); not needed with ``calibration_cache``.
        method: ``minmax``, ``entropy`` or ``percentile``; must be the cache's method when a cache is given.
        exclude_nodes: node names kept in float (sensitivity fallback); see ``qdq_float.float_fallback``.
        extra_options: passed to onnxruntime's quantizer (over our defaults).
        calibration_cache: a cache written by ``calibrate``.
        bias_means: ``bias_correction.input_means`` of ``src``: when given, every int8 layer's bias is corrected
            for the mean shift of its weight rounding (``bias_correction.correct_bias``).
        weight_bits: 7 (−64 … 64, no int16 saturation on x86 CPUs without VNNI: see the module docstring) or 8.
    """
    if weight_bits not in WEIGHT_BITS:  # a guard for direct callers; the export checks it in Int8Options
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    reduce_range = weight_bits == 7
    twin = onnx.load(str(src))
    options = _quantizer_options(twin, method, reduce_range, extra_options)
    fast = per_channel and not extra_options and calibration_cache is not None
    # per-channel weights from onnxruntime's per-tensor output (per_channel.py: the same model, 1–1.5 s sooner on
    # ResNet50), unless an option or an op outside what that module rewrites needs onnxruntime's own path; a
    # calibration cache is needed to run the quantizer again should the rewrite decline (a reader is single-use)
    fast = fast and covered(twin)
    run = dict(
        reader=reader,
        method=method,
        exclude_nodes=exclude_nodes,
        options=options,
        reduce_range=reduce_range,
        calibration_cache=calibration_cache,
    )
    model = _ort_quantize(src, Path(dst), channels=per_channel and not fast, **run)
    if fast and to_per_channel(model, twin, reduce_range=reduce_range) is None:
        model = _ort_quantize(src, Path(dst), channels=True, **run)
    folded = fold_scales(model)
    rewired = float_fallback(model, twin, set(exclude_nodes)) if exclude_nodes else []
    corrected = correct_bias(model, twin, bias_means) if bias_means else 0
    remove_dead(model)
    toposort(model.graph)
    onnx.save(model, str(dst))
    return QuantizeReport(folded, tuple(rewired), corrected)


def _quantizer_options(twin: onnx.ModelProto, method: str, reduce_range: bool, extra: dict | None) -> dict:
    """onnxruntime quantizer's extra options: asymmetric activations, symmetric weights, our overrides."""
    options = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if method == "percentile":
        options["CalibPercentile"] = PERCENTILE
    if reduce_range:  # depthwise weights keep 8 bits: their kernel cannot saturate (per_channel.full_range_weights)
        options.update(full_range_overrides(twin))
    options.update(extra or {})
    return options


def _ort_quantize(
    src, dst: Path, *, channels: bool, reader, method, exclude_nodes, options, reduce_range, calibration_cache
) -> onnx.ModelProto:
    """onnxruntime's ``quantize_static`` to a scratch file beside ``dst``, loaded back (the file is removed)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    raw = dst.with_name(f".{dst.name}.raw")
    try:
        with quiet():
            quantize_static(
                str(src),
                str(raw),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=channels,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calibration_method(method),
                nodes_to_exclude=list(exclude_nodes),
                extra_options=options,
                reduce_range=reduce_range,
                calibration_cache_path=str(calibration_cache) if calibration_cache else None,
            )
        return onnx.load(str(raw))
    finally:
        raw.unlink(missing_ok=True)
