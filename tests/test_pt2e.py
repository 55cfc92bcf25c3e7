"""PT2E int8 (convert.targets.pt2e): the recipe does what it says on a tiny depthwise-separable net at 32².

The accuracy it buys on a trained network is measured by tools/pt2e_study.py (EfficientNet-Lite0, docs/INT8.md);
here: bias correction takes out the mean output shift that weight rounding adds, float modules stay float, clamps
are fused into their layer with an output range of the clamp's own, and both backends' quantizers run.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("executorch")
pytest.importorskip("litert_torch")

from edgecnn.convert.targets import pt2e  # noqa: E402
from edgecnn.convert.targets.pt2e_passes import in_modules  # noqa: E402

nn = torch.nn


class Tiny(nn.Module):
    """Stem → depthwise → pointwise → linear, ReLU6 after the first two (as EfficientNet-Lite and MobileNets)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.pw(self.dw(self.stem(x))).mean((2, 3)))


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth structured images (gradients and blobs), not white noise: activations with a mean, like photos'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    out = []
    for _ in range(n):
        a, b, c = rng.normal(size=(3, 3))
        cx, cy = rng.uniform(0, 1, 2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)
        out.append(np.stack([a[i] * xx + b[i] * yy + c[i] * blob for i in range(3)]))
    return np.asarray(out, np.float32)


@pytest.fixture(scope="module")
def model():
    """A Tiny with BatchNorm statistics estimated on structured images and coarse weights: a few large weights per
    output channel make the int8 step large, so rounding moves the outputs measurably."""
    torch.manual_seed(0)
    net = Tiny()
    with torch.no_grad():
        for conv in (net.stem[0], net.dw[0], net.pw[0]):
            w = conv.weight.flatten(1)
            w[:, 0] = w.abs().max(1).values * 8
        net.train()
        for i in range(4):
            net(torch.from_numpy(_images(16, 100 + i)))
    return net.eval()


@pytest.fixture(scope="module")
def data():
    return {"example": _images(1, 0), "calibration": _images(16, 1), "judged": _images(16, 2)}


def _run(graph, arrays: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([graph(torch.from_numpy(a[None])).numpy() for a in arrays])


def _calls(graph, name: str) -> list:
    return [n for n in graph.graph.nodes if n.op == "call_function" and name in str(n.target)]


@pytest.mark.parametrize("backend", pt2e.BACKENDS)
def test_quantize_runs_and_stays_close_on_both_backends(model, data, backend):
    graph, quantizer = pt2e.quantize(model, data["example"], data["calibration"], backend)
    record = pt2e.record(graph, quantizer, graph.meta["edgecnn_recipe"])
    assert record["clamps_fused"] == 3 and record["fuse_clamps"] and record["biases_corrected"] == 0
    with torch.no_grad():
        ref = model(torch.from_numpy(data["judged"])).numpy()
    out = _run(graph, data["judged"])
    cosine = (ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out)
    assert cosine > 0.98
    assert _calls(graph, "quantize_per_tensor"), "the converted graph has no quantized activations"


def test_bias_correction_takes_out_the_mean_shift(model, data):
    """The per-class mean of int8 - fp32 over images (what bias correction removes) shrinks; min/max observers
    keep activation clipping out of the comparison."""
    with torch.no_grad():
        ref = model(torch.from_numpy(data["calibration"])).numpy()
    shifts = {}
    for corrected in (False, True):
        recipe = pt2e.Recipe(bias_correction=corrected, fuse_clamps=True, observer="minmax")
        graph, _ = pt2e.quantize(model, data["example"], data["calibration"], "xnnpack", recipe)
        shifts[corrected] = np.abs((_run(graph, data["calibration"]) - ref).mean(0)).mean()
    assert shifts[True] < 0.6 * shifts[False], shifts


@pytest.mark.parametrize("backend", pt2e.BACKENDS)
def test_float_modules_stay_float_and_clamps_fuse(model, data, backend):
    recipe = pt2e.Recipe(float_modules=("stem",), fuse_clamps=True)
    graph, quantizer = pt2e.quantize(model, data["example"], data["calibration"], backend, recipe)
    convs = _calls(graph, "aten.conv2d")
    stem = [c for c in convs if in_modules(c, ("stem",))]
    assert len(stem) == 1 and len(convs) == 3
    weight, x = stem[0].args[1], stem[0].args[0]
    assert weight.op == "get_attr" and x.op == "placeholder", "the stem convolution was quantized"
    for conv in convs[1:]:
        assert "dequantize" in str(conv.args[1].target), "a convolution outside the float modules kept float weights"
        (clamp,) = conv.users  # fused: no quantize between the convolution and its ReLU6
        assert "hardtanh" in str(clamp.target)
        (q,) = clamp.users
        assert "quantize_per_tensor" in str(q.target)
        scale = float(getattr(graph, q.args[1].target)) if hasattr(q.args[1], "target") else float(q.args[1])
        assert scale <= 6.0 / 255 * 1.01, "the clamp's output is quantized over more than its [0, 6] range"
    assert quantizer.fused == 2 and quantizer.kept_float == 2  # the stem: its conv (BatchNorm folded) and ReLU6


def test_recipe_record_and_refusals():
    assert pt2e.TRAINED.to_dict()["bias_correction"] is True
    fields = {"float_modules", "fuse_clamps", "bias_correction", "observer", "quantize_adds", "split_hardswish"}
    assert set(pt2e.Recipe().to_dict()) == fields
    with pytest.raises(ValueError, match="observer"):
        pt2e.Recipe(observer="percentile")
    with pytest.raises(ValueError, match="backend"):
        pt2e.make_quantizer("coreml", pt2e.Recipe())


def test_each_runtime_is_offered_its_forms():
    """XNNPACK's quantizer annotates adds itself: one plain form; on LiteRT the adds int8 or float, timed there."""
    from dataclasses import replace

    from edgecnn import create_model

    assert pt2e.candidate_recipes(Tiny(), trained=False) == {"int8": pt2e.DEFAULT}
    litert = pt2e.candidate_recipes(Tiny(), trained=True, backend="litert")
    assert litert == {"int8": pt2e.TRAINED, "float-adds": replace(pt2e.TRAINED, quantize_adds=False)}
    assert pt2e.make_quantizer("litert", litert["int8"]).quantize_adds
    assert not pt2e.make_quantizer("litert", litert["float-adds"]).quantize_adds
    assert not pt2e.make_quantizer("xnnpack", pt2e.TRAINED).quantize_adds
    lite = pt2e.candidate_recipes(create_model("efficientnet_lite0"), trained=True)
    assert set(lite) == {"int8", "stem"} and lite["stem"].float_modules == pt2e.LITE_STEM


def test_trained_recipe_keeps_the_lite_stem_float():
    from edgecnn import create_model

    lite = pt2e.trained_recipe(create_model("efficientnet_lite0"))
    assert lite.float_modules == pt2e.LITE_STEM and lite.observer == "minmax" and lite.bias_correction
    assert pt2e.trained_recipe(Tiny()) == pt2e.TRAINED
    v3 = pt2e.trained_recipe(create_model("mobilenet_v3_large"))  # its layers at stride ≤ 4, histogram observers
    assert v3.float_modules == ("features.0", "features.1", "features.2", "features.3") and v3.observer == "histogram"
    assert pt2e.trained_recipe(create_model("mobilenet_v3_small")).float_modules == ("features.0", "features.1")
    assert pt2e.trained_recipe(create_model("mobilenet_v2")).float_modules == v3.float_modules
    assert pt2e.trained_recipe(create_model("resnet18")) == pt2e.TRAINED  # no stem named: none offered
    assert set(pt2e.candidate_recipes(create_model("mobilenet_v3_large"), trained=True, backend="litert")) == {
        "int8",
        "float-adds",
        "stem",
    }


class Residual(nn.Module):
    """Tiny with two residual blocks around its depthwise layer, the second block's skip the first's sum (as in
    EfficientNet-Lite's and MobileNetV2's stages)."""

    def __init__(self) -> None:
        super().__init__()
        self.tiny = Tiny()

    def forward(self, x):
        t = self.tiny
        y = t.stem(x)
        y = y + t.dw(y)
        y = y + t.dw(y)
        return t.fc(t.pw(y).mean((2, 3)))


@pytest.mark.parametrize("backend", pt2e.BACKENDS)
def test_residual_adds_are_int8_on_both_backends(model, data, backend):
    """litert-torch's quantizer misses adds in a torch.export graph (the second add would take the first's float
    sum); edgecnn's recipe quantizes them on LiteRT, as XNNPACK's own quantizer does: every add input is int8."""
    net = Residual().eval()
    net.tiny.load_state_dict(model.state_dict())
    graph, quantizer = pt2e.quantize(net, data["example"], data["calibration"], backend, pt2e.DEFAULT)
    adds = _calls(graph, "aten.add")
    assert len(adds) == 2
    for add in adds:
        assert all("dequantize" in str(x.target) for x in add.args[:2]), [str(x.target) for x in add.args[:2]]
    assert pt2e.record(graph, quantizer)["adds_quantized"] == (2 if backend == "litert" else 0)


class HardSwishNet(nn.Module):
    """MobileNetV3's pattern at 32²: conv → hard-swish (in place, as torchvision's) → depthwise → hard-swish → head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(True))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.dw(self.stem(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def hardswish_net(data):
    torch.manual_seed(1)
    net = HardSwishNet().train()
    with torch.no_grad():
        net(torch.from_numpy(data["calibration"]))
    return net.eval()


def test_hardswish_is_split_into_int8_parts_on_litert(hardswish_net, data):
    """On LiteRT each hard-swish becomes x · hardsigmoid(x) with the hardsigmoid's output and the product quantized;
    ExecuTorch's XNNPACK takes its int8 hard-swish whole, so that graph keeps it."""
    graph, quantizer = pt2e.quantize(hardswish_net, data["example"], data["calibration"], "litert", pt2e.DEFAULT)
    assert not _calls(graph, "hardswish") and len(_calls(graph, "hardsigmoid")) == 2
    for gate in _calls(graph, "hardsigmoid"):
        assert [str(u.target) for u in gate.users] == ["quantized_decomposed.quantize_per_tensor.default"]
    assert pt2e.record(graph, quantizer)["hardswish_split"] == 2
    with torch.no_grad():
        ref = hardswish_net(torch.from_numpy(data["judged"])).numpy()
    out = _run(graph, data["judged"])
    assert (ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out) > 0.98
    kept, _ = pt2e.quantize(hardswish_net, data["example"], data["calibration"], "xnnpack", pt2e.DEFAULT)
    assert len(_calls(kept, "hardswish")) == 2 and not _calls(kept, "hardsigmoid")


def test_an_in_place_hardswish_read_elsewhere_is_left_whole():
    """hardswish_(x) also changes what a later reader of x sees; the out-of-place rewrite would not, so such a node
    stays whole. (torch.export routes later reads through the in-place op's output, so its graphs split fully.)"""
    from torch.fx import Graph, GraphModule

    from edgecnn.convert.targets.pt2e_passes import split_hardswish

    aten = torch.ops.aten
    x = torch.linspace(-5, 5, 21)
    for op, splits in ((aten.hardswish_.default, 0), (aten.hardswish.default, 1)):
        g = Graph()
        a = g.placeholder("a")
        g.output(g.call_function(aten.add.Tensor, (a, g.call_function(op, (a,)))))
        module = GraphModule(nn.Module(), g)
        want = module(x.clone())
        assert split_hardswish(module) == splits
        torch.testing.assert_close(module(x.clone()), want)


def test_split_hardswish_runs_in_one_xnnpack_partition(hardswish_net, data, tmp_path):
    """The .tflite LiteRT runs: with the split, XNNPACK takes every node; without it, LiteRT's int8 HARD_SWISH runs
    on its own kernels between partitions (what MobileNetV3-Large's file did: 22 partitions)."""
    from dataclasses import replace

    from edgecnn.convert.targets.request import TargetRequest
    from edgecnn.convert.targets.tflite import export

    common = dict(precision="int8", calibration=data["calibration"])
    split = export(TargetRequest(hardswish_net, data["example"], tmp_path / "s.tflite", recipe=pt2e.DEFAULT, **common))
    whole = replace(pt2e.DEFAULT, split_hardswish=False)
    kept = export(TargetRequest(hardswish_net, data["example"], tmp_path / "w.tflite", recipe=whole, **common))
    assert split.delegation["partitions"] == 1 and not split.delegation["other_ops"], split.delegation
    assert kept.delegation["other_ops"].get("HARD_SWISH") and kept.delegation["partitions"] > 1, kept.delegation
    assert split.int8["recipe"]["hardswish_split"] == 2 and kept.int8["recipe"]["hardswish_split"] == 0
