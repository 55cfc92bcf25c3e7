"""The exporter's dynamic axes (batch; height and width for U-Net): a static trace made dynamic in the graph, proven,
with the symbolic trace as fallback."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edgecnn.convert import onnx_export as E


class Flat(nn.Module):
    """conv → ReLU (in place) → view(batch, -1) → linear: the flatten a static trace bakes the batch into."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(inplace=True), nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).view(x.shape[0], 4 * 4 * 4))


class Broadcast(Flat):
    """Adds a learned row expanded to the batch: shape arithmetic that the rewrite does not handle."""

    def forward(self, x):
        y = super().forward(x)
        return y + torch.ones(1, 5).expand(x.shape[0], 5)


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {E.INPUT_NAME: x})[0]


def test_static_trace_is_made_dynamic_and_matches_pytorch_at_any_batch(tmp_path):
    torch.manual_seed(0)
    model = Flat().eval()
    path = tmp_path / "flat.onnx"
    assert E.export_onnx(model, path, input_shape=(3, 8, 8)).batch_axis == "static trace, made dynamic"
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 3, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(_run(path, x), want, rtol=1e-5, atol=1e-6)
    assert model.act.inplace  # the model is left as it was


def test_shape_arithmetic_falls_back_to_the_symbolic_trace(tmp_path):
    torch.manual_seed(0)
    model = Broadcast().eval()
    path = tmp_path / "broadcast.onnx"
    how = E.export_onnx(model, path, input_shape=(3, 8, 8))
    assert how.batch_axis == "symbolic trace"
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(_run(path, x), model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert model.act.inplace  # in-place activations are restored after the symbolic trace


def test_make_batch_dynamic_refuses_a_graph_it_cannot_prove(tmp_path):
    path = tmp_path / "fixed.onnx"
    E.export_onnx(Flat().eval(), path, input_shape=(3, 8, 8), batch=4)
    before = path.read_bytes()
    assert not E.make_batch_dynamic(path, 2)  # traced at batch 4, not 2: nothing matches, file untouched
    assert path.read_bytes() == before


def test_fixed_batch_stays_fixed(tmp_path):
    path = tmp_path / "fixed.onnx"
    assert E.export_onnx(Flat().eval(), path, input_shape=(3, 8, 8), batch=4).batch_axis == "fixed"
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


class Skip(nn.Module):
    """A tiny U-Net step: conv → pool → upsample by a scale → concat with the skip. Nothing in it knows the size."""

    def __init__(self, fixed_size: tuple | None = None) -> None:
        super().__init__()
        self.conv, self.down, self.fixed = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), fixed_size

    def forward(self, x):
        y = torch.relu(self.conv(x))
        up = self.down(y)
        up = (
            nn.functional.interpolate(up, size=self.fixed, mode="bilinear")
            if self.fixed
            else nn.functional.interpolate(up, scale_factor=2.0, mode="bilinear")
        )
        return torch.cat([y, up], dim=1)


def test_static_trace_is_made_dynamic_in_height_and_width_and_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = Skip().eval()
    path = tmp_path / "skip.onnx"
    assert (
        E.export_onnx(model, path, input_shape=(3, 16, 16), dynamic_hw=True, size_multiple=2).batch_axis
        == "static trace, made dynamic"
    )
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    for b, h, w in ((1, 8, 24), (3, 32, 10)):
        x = np.random.default_rng(h).standard_normal((b, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(_run(path, x), want, rtol=1e-5, atol=1e-6)


def test_a_size_in_the_graph_keeps_height_and_width_to_the_symbolic_trace(tmp_path):
    # interpolate to a fixed size: the static graph's Resize carries sizes, so freeing H/W would be wrong
    model = Skip(fixed_size=(16, 16)).eval()
    path = tmp_path / "fixed.onnx"
    E._trace(model, path, torch.zeros(2, 3, 16, 16), None, 18)
    before = path.read_bytes()
    assert not E.make_hw_dynamic(path, model, 2)
    assert path.read_bytes() == before


class ConvBN(nn.Module):
    """Two conv → BatchNorm pairs; the second conv's output is also read by a skip, so its BatchNorm must stay."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 6, 3, 1, 1, bias=False), nn.BatchNorm2d(6)
        self.c2, self.b2 = nn.Conv2d(6, 6, 3, 1, 1), nn.BatchNorm2d(6)

    def forward(self, x):
        y = self.c2(torch.relu(self.b1(self.c1(x))))
        return self.b2(y) + y


class Branchy(ConvBN):
    """Control flow on a tensor's value: torch.fx cannot trace it symbolically."""

    def forward(self, x):
        y = self.b1(self.c1(x))
        return y if y.sum() > 0 else -y


def _trained_stats(model: nn.Module) -> nn.Module:
    # eval-mode BatchNorm with its init statistics (mean 0, var 1, γ 1, β 0) is nearly the identity, so folding it
    # would prove nothing: give every BatchNorm statistics and an affine transform far from that.
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.2)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def test_fold_batchnorm_folds_single_reader_pairs_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = _trained_stats(ConvBN())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, count = E.fold_batchnorm(model)
    assert count == 1  # b1; b2 reads a conv output that the skip also reads
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 1
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert expected.abs().max() > 1  # not a degenerate output
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_returns_an_untraceable_model_as_it_is():
    model = _trained_stats(Branchy())
    folded, count = E.fold_batchnorm(model)
    assert (folded, count) == (model, 0)


def test_exported_graph_has_the_folded_batchnorm_gone_and_matches_the_unfolded_model(tmp_path):
    torch.manual_seed(0)
    model = _trained_stats(ConvBN())
    path = tmp_path / "convbn.onnx"
    made = E.export_onnx(model, path, input_shape=(3, 8, 8))
    assert made == E.Exported("static trace, made dynamic", 1)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("BatchNormalization") == 1
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(_run(path, x), model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)
    unfolded = E.export_onnx(model, tmp_path / "unfolded.onnx", input_shape=(3, 8, 8), fold_bn=False)
    assert unfolded.folded_batchnorms == 0
