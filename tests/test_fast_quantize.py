"""The int8 step's two shortcuts through onnxruntime's quantizer give what onnxruntime itself gives, for the installed
onnxruntime: per-channel weights from its per-tensor output (convert/per_channel.py) are its per-channel
quantization exactly (same nodes, same initializers: dtype, shape, every value), and the min/max calibrator on the
optimized graph (quantize.OptimizedMinMax) finds its ranges up to kernel rounding."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from torch import nn

import edgecnn
from edgecnn.convert.int8.calibrate import calibrate
from edgecnn.convert.int8.per_channel import covered, full_range_overrides, full_range_weights, to_per_channel
from edgecnn.convert.int8.quantize import quantize_int8
from edgecnn.convert.int8.twin import int8_form, quantization_twin
from edgecnn.convert.ort_tools import quiet
from edgecnn.convert.simplify import simplify


class BigBias(nn.Module):
    """Weights ~1e-7 under biases ~1e4: input scale × weight scale is too small for an int32 bias, so onnxruntime
    grows those channels' weight scales (its int32-bias adjustment) — the rare branch, made to happen."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.mul_(1e-6)
            self.conv.weight[0] *= 1e5  # one ordinary channel beside the starved ones
            self.conv.bias.copy_(torch.tensor([1.0, 2e4, -3e4, 5e3, 0.0, 7e4]))

    def forward(self, x):
        return self.fc(torch.relu(self.up(torch.relu(self.conv(x)))).mean((2, 3)))


class WithMatMul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.w = nn.Parameter(torch.randn(4, 5))

    def forward(self, x):
        return self.conv(x).mean((2, 3)) @ self.w


def _twin(module: nn.Module, folder, size: int, statistics: bool = True):
    torch.manual_seed(0)
    if statistics:  # BatchNorm statistics of a trained model: each folded bias its own (see the shared-bias test)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                nn.init.normal_(m.bias, 0, 0.1)
    path = folder / "fp32.onnx"
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            (torch.randn(1, 3, size, size),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
    simplified, _ = simplify(onnx.load(str(path)))  # BatchNorms folded, as the export leaves them
    onnx.save(simplified, str(path))
    twin = quantization_twin(path)
    int8_form(twin)  # hard-swish rewritten, as the int8 step quantizes it
    onnx.save(twin, str(folder / "twin.onnx"))
    images = np.random.default_rng(0).standard_normal((6, 3, size, size)).astype(np.float32)
    return folder / "twin.onnx", calibrate(folder / "twin.onnx", images, folder / "calib.json")


def _ort(twin, cache, dst, per_channel: bool, exclude=(), reduce_range: bool = True) -> onnx.ModelProto:
    """onnxruntime's own quantizer, as quantize_int8 calls it (7-bit weights, ``reduce_range``, by default, with
    depthwise weights kept at 8 bits by a per-tensor override)."""
    overrides = full_range_overrides(onnx.load(str(twin))) if reduce_range else {}
    with quiet():
        quantize_static(
            str(twin),
            str(dst),
            None,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, **overrides},
            calibration_cache_path=str(cache),
        )
    return onnx.load(str(dst))


def _assert_same(ours: onnx.ModelProto, theirs: onnx.ModelProto) -> None:
    assert [n.SerializeToString() for n in ours.graph.node] == [n.SerializeToString() for n in theirs.graph.node]
    a = {i.name: numpy_helper.to_array(i) for i in ours.graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in theirs.graph.initializer}
    assert a.keys() == b.keys()
    for name in b:  # bit for bit: scales compared as stored, not within a tolerance
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """case name → (twin path, calibration cache), each made once for the module."""
    made = {}

    def get(case: str, statistics: bool = True):
        if (case, statistics) not in made:
            make, size = CASES[case]
            torch.manual_seed(0)  # the same random weights every run
            made[case, statistics] = _twin(make(), tmp_path_factory.mktemp(case), size, statistics)
        return made[case, statistics]

    return get


CASES = {  # family coverage: plain/strided/depthwise convs, residual Adds, Gemm heads, hard-swish, ConvTranspose
    "resnet18": (lambda: edgecnn.create_model("resnet18"), 32),
    "mobilenet_v3_small": (lambda: edgecnn.create_model("mobilenet_v3_small"), 32),
    "big_bias": (BigBias, 8),
}


@pytest.mark.parametrize("bits", [7, 8])
@pytest.mark.parametrize("case", sorted(CASES))
def test_per_channel_rewrite_equals_onnxruntimes_own(case, bits, twins, tmp_path):
    twin, cache = twins(case)
    theirs = _ort(twin, cache, tmp_path / "pc.onnx", per_channel=True, reduce_range=bits == 7)
    ours = _ort(twin, cache, tmp_path / "pt.onnx", per_channel=False, reduce_range=bits == 7)
    rewritten = to_per_channel(ours, onnx.load(str(twin)), reduce_range=bits == 7)
    int8 = {i.name for i in theirs.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert rewritten and rewritten == sum(
        1
        for n in theirs.graph.node
        if n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute) and n.input[0] in int8
    )  # every per-channel weight onnxruntime made
    _assert_same(ours, theirs)
    levels = 64 if bits == 7 else 127
    full = {f"{w}_quantized" for w in full_range_weights(onnx.load(str(twin)))} if bits == 7 else set()
    assert bool(full) == (bits == 7 and case == "mobilenet_v3_small")  # its depthwise convolutions
    widest = {
        i.name: int(np.abs(numpy_helper.to_array(i).astype(np.int32)).max())
        for i in ours.graph.initializer
        if i.data_type == onnx.TensorProto.INT8
    }
    assert max(v for k, v in widest.items() if k not in full) == levels  # the widest channel uses its range
    assert all(widest[k] == 127 for k in full)  # depthwise weights keep 8 bits
    if case == "big_bias":  # the adjustment really ran: some weight scales are larger than max|w|/levels
        w = numpy_helper.to_array({i.name: i for i in onnx.load(str(twin)).graph.initializer}["conv.weight"])
        s = numpy_helper.to_array({i.name: i for i in ours.graph.initializer}["conv.weight_scale"])
        plain = np.abs(w).reshape(len(w), -1).max(1) / levels
        assert (s > plain * 1.01).sum() >= 3 and np.isclose(s[0], plain[0], rtol=1e-6)


def test_nodes_kept_in_float_are_left_alone(twins, tmp_path):
    twin, cache = twins("resnet18")
    names = [n.name for n in onnx.load(str(twin)).graph.node if n.op_type == "Conv"][:2]
    theirs = _ort(twin, cache, tmp_path / "pc.onnx", per_channel=True, exclude=names)
    ours = _ort(twin, cache, tmp_path / "pt.onnx", per_channel=False, exclude=names)
    to_per_channel(ours, onnx.load(str(twin)), reduce_range=True)
    _assert_same(ours, theirs)


def test_shared_biases(twins, tmp_path):
    """Untouched BatchNorms fold to identical zero biases, which onnxsim merges into one initializer read by many
    convolutions. onnxruntime gives each convolution its own copy, and the rewrite matches it; with a reader of
    that bias kept in float the copy is not made, the one int32 bias cannot carry each reader's scales, so the
    rewrite declines and quantize_int8 takes onnxruntime's own per-channel path."""
    twin, cache = twins("resnet18", statistics=False)
    model = onnx.load(str(twin))
    pt = _ort(twin, cache, tmp_path / "pt.onnx", per_channel=False)
    assert to_per_channel(pt, model, reduce_range=True)
    _assert_same(pt, _ort(twin, cache, tmp_path / "pc.onnx", per_channel=True))

    first = tuple(n.name for n in model.graph.node if n.op_type == "Conv")[:1]
    assert (
        to_per_channel(
            _ort(twin, cache, tmp_path / "pt.onnx", per_channel=False, exclude=first), model, reduce_range=True
        )
        is None
    )
    quantize_int8(twin, tmp_path / "q.onnx", calibration_cache=cache, exclude_nodes=first)
    quantize_int8(
        twin,
        tmp_path / "ort.onnx",
        calibration_cache=cache,
        exclude_nodes=first,
        extra_options={"WeightSymmetric": True},
    )
    _assert_same(onnx.load(str(tmp_path / "q.onnx")), onnx.load(str(tmp_path / "ort.onnx")))


def test_uncovered_graphs_use_onnxruntimes_per_channel_path(tmp_path):
    twin, cache = _twin(WithMatMul(), tmp_path, 8)
    model = onnx.load(str(twin))
    assert not covered(model)
    pt = _ort(twin, cache, tmp_path / "pt.onnx", per_channel=False)
    assert to_per_channel(pt, model, reduce_range=True) is None
    quantize_int8(twin, tmp_path / "q.onnx", calibration_cache=cache)  # still per-channel, by onnxruntime
    quantize_int8(twin, tmp_path / "ort.onnx", calibration_cache=cache, extra_options={"WeightSymmetric": True})
    q = onnx.load(str(tmp_path / "q.onnx"))
    _assert_same(q, onnx.load(str(tmp_path / "ort.onnx")))
    assert any(a.name == "axis" for n in q.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute)


def test_quantize_int8_ships_the_per_channel_form(twins, tmp_path):
    twin, cache = twins("mobilenet_v3_small")
    quantize_int8(twin, tmp_path / "fast.onnx", calibration_cache=cache)
    # a no-op extra option sends quantize_int8 down onnxruntime's own per-channel path: the same file
    quantize_int8(twin, tmp_path / "ort.onnx", calibration_cache=cache, extra_options={"WeightSymmetric": True})
    _assert_same(onnx.load(str(tmp_path / "fast.onnx")), onnx.load(str(tmp_path / "ort.onnx")))


def test_optimized_calibration_measures_onnxruntimes_ranges(twins, tmp_path):
    """The min/max calibrator run on the optimized graph (quantize.OptimizedMinMax) finds the ranges
    onnxruntime's own calibrator finds on the unoptimized one, up to kernel rounding."""
    from onnxruntime.quantization.calibrate import create_calibrator, load_tensors_data

    from edgecnn.convert.int8.calibrate import BatchReader, _op_types

    twin, cache = twins("mobilenet_v3_small")
    ours = load_tensors_data(cache).data  # written by calibrate(), on the same 6 images
    images = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    with quiet():
        theirs = create_calibrator(twin, _op_types(), augmented_model_path=str(tmp_path / "aug.onnx"))
        theirs.collect_data(BatchReader(images))
        theirs = theirs.compute_data().data
    assert ours.keys() == theirs.keys() and len(ours) > 50
    for name, t in theirs.items():
        lo, hi = (float(np.ravel(v)[0]) for v in t.range_value)
        o_lo, o_hi = (float(np.ravel(v)[0]) for v in ours[name].range_value)
        assert abs(o_lo - lo) <= 1e-4 * (hi - lo) + 1e-7 and abs(o_hi - hi) <= 1e-4 * (hi - lo) + 1e-7, name
