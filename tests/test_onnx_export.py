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
    assert E.export_onnx(model, path, input_shape=(3, 8, 8)) == "static trace, made dynamic"
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
    assert how == "symbolic trace"
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
    assert E.export_onnx(Flat().eval(), path, input_shape=(3, 8, 8), batch=4) == "fixed"
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


class Skip(nn.Module):
    """A tiny U-Net step: conv → pool → upsample by a scale → concat with the skip. Nothing in it knows the size."""

    def __init__(self, fixed_size: tuple | None = None) -> None:
        super().__init__()
        self.conv, self.down, self.fixed = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), fixed_size

    def forward(self, x):
        y = torch.relu(self.conv(x))
        up = self.down(y)
        up = (nn.functional.interpolate(up, size=self.fixed, mode="bilinear") if self.fixed else
              nn.functional.interpolate(up, scale_factor=2.0, mode="bilinear"))
        return torch.cat([y, up], dim=1)


def test_static_trace_is_made_dynamic_in_height_and_width_and_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = Skip().eval()
    path = tmp_path / "skip.onnx"
    assert E.export_onnx(model, path, input_shape=(3, 16, 16), dynamic_hw=True, size_multiple=2) == \
        "static trace, made dynamic"
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
