"""What edgecnn adds to a PT2E quantization: fused clamps and bias correction for accuracy; for LiteRT, int8 adds and
a hard-swish its XNNPACK delegate takes.

Fused clamps. Both backends' quantizers fuse ``conv → relu`` (one int8 output, observed after the relu) but not
``conv → hardtanh``, which is what ReLU6 exports to: the convolution's output is quantized over its whole pre-clamp
range and the clamp shares those parameters, so a ReLU6 output in [0, 6] gets the few int8 steps that fall inside
a range like [-30, 25]. EfficientNet-Lite and the MobileNets put ReLU6 after nearly every convolution.
``RecipeQuantizer`` annotates ``conv/linear → hardtanh`` as one unit (weights and input as the backend
would, the output observed after the clamp); XNNPACK fuses the clamp into the convolution's output bounds, as it
does a relu, and LiteRT's converter into its fused activation, so the file has the same operators, and none slower.

Bias correction (Nagel et al., ICCV 2019, as ``convert.int8.bias_correction`` does for ONNX): rounding a layer's
weights to int8 moves its output by ``ΔW·x``, whose mean ``ΔW·E[x]`` per output channel is a systematic offset
that adds up layer after layer. ``correct_biases`` reads ``ΔW`` from the converted graph's own quantize/dequantize
of each (BatchNorm-folded) weight, measures ``E[x]`` on the float graph over the calibration images, and takes the
offset out of each layer's float bias (the backends quantize the bias when they lower).

Quantized adds (LiteRT): litert-torch's quantizer finds ``add`` by the source partitions that ``torch.export``'s
default non-strict trace no longer records, so it annotates no residual add; each stays a float ADD between a
DEQUANTIZE and a QUANTIZE. ``annotate_adds`` annotates them as XNNPACK's quantizer does (both inputs and the output
int8), which makes LiteRT's quantized graph the same as XNNPACK's: EfficientNet-Lite0 (ImageNet weights, the
trained recipe) kept 0.953 top-1 agreement with fp32 on the study's 512 crops with float adds, 0.971 with int8
adds, and ran no slower (tools/pt2e_study.py, docs/INT8.md). Which is faster is the network's call, so the export
makes both forms and times them on LiteRT (``Recipe.quantize_adds``, ``pipeline.target_int8``).

Split hard-swish (LiteRT): litert-torch lowers ``aten.hardswish`` to one HARD_SWISH operator, int8 in a quantized
graph, and LiteRT's XNNPACK delegate has no int8 HARD_SWISH: each runs on LiteRT's own kernel and cuts the
delegated graph around it (MobileNetV3-Large: 21 such operators, 22 partitions, its int8 slower than its fp32).
``split_hardswish`` writes each as ``x · hardsigmoid(x)`` and ``annotate_split_hardswish`` quantizes the
hardsigmoid's output ([0, 1], 256 steps) and the product. LiteRT then lowers the hardsigmoid to a float ADD (ReLU6
fused) and MUL between a DEQUANTIZE and a QUANTIZE, and the product to an int8 MUL: XNNPACK takes all of it
(MobileNetV3-Large at 224²: one partition, 7.7 → 2.2 ms). The quantized hardsigmoid is what keeps LiteRT's
converter from matching ``x · relu6(x + 3) / 6`` and fusing it back into a HARD_SWISH, which a float product does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.fx import GraphModule, Interpreter, Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer

_KEY = "quantization_annotation"
_CLAMPS = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
_CONVS = (torch.ops.aten.conv2d.default,)
_LAYERS = _CONVS + (torch.ops.aten.linear.default,)
_ADDS = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
_HARDSWISH = (torch.ops.aten.hardswish.default, torch.ops.aten.hardswish_.default)
_SPLIT = "edgecnn_split_hardswish"  # node meta: "gate" (the hardsigmoid) or "product" (the multiply)
_QDQ = tuple(
    getattr(torch.ops.quantized_decomposed, f"{op}_per_{kind}").default
    for op in ("quantize", "dequantize")
    for kind in ("tensor", "channel")
)


def in_modules(node: Node, names: tuple) -> bool:
    """Whether ``node`` was traced inside one of the submodules ``names`` (qualified names, as
    ``model.named_modules()`` gives them)."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [entry[0] for entry in stack.values()]
    return any(path == name or path.startswith(name + ".") for path in paths for name in names)


class RecipeQuantizer(Quantizer):
    """``backend``'s quantizer, after annotations of its own: the nodes inside ``float_modules`` are marked
    annotated with nothing to observe (they stay float: XNNPACK's quantizer refuses ``set_module_name(name,
    None)``); with ``fuse_clamps``, each ``conv/linear → hardtanh`` pair is annotated with ``config`` as one
    unit; with ``quantize_adds``, each tensor + tensor add (``annotate_adds``); with ``split``, each
    hard-swish is rewritten before annotation and its two parts annotated (``split_hardswish``). The backend then
    annotates the rest: its annotators leave annotated nodes alone."""

    def __init__(
        self,
        backend: Quantizer,
        config,
        float_modules: tuple = (),
        fuse_clamps: bool = True,
        quantize_adds: bool = False,
        split: bool = False,
    ) -> None:
        super().__init__()
        self.backend, self.config = backend, config
        self.float_modules, self.fuse_clamps, self.quantize_adds = tuple(float_modules), fuse_clamps, quantize_adds
        self.split = split
        self.fused = self.kept_float = self.adds = self.hardswish_split = 0

    @property
    def global_config(self):
        """The backend's global configuration (litert-torch's ``QuantConfig`` reads it)."""
        return self.backend.global_config

    def transform_for_annotation(self, model: GraphModule) -> GraphModule:
        model = self.backend.transform_for_annotation(model)
        if self.split:
            self.hardswish_split = split_hardswish(model, self.float_modules)
        return model

    def annotate(self, model: GraphModule) -> GraphModule:
        self.kept_float = keep_float(model, self.float_modules)
        if self.fuse_clamps:
            self.fused = annotate_clamps(model, self.config)
        if self.quantize_adds:
            self.adds = annotate_adds(model, self.config)
        if self.split:
            annotate_split_hardswish(model, self.config)
        return self.backend.annotate(model)

    def validate(self, model: GraphModule) -> None:
        self.backend.validate(model)


def keep_float(model: GraphModule, float_modules: tuple) -> int:
    """Mark every operator traced inside ``float_modules`` as annotated with no quantization; returns how many."""
    kept = 0
    for node in model.graph.nodes:
        if node.op == "call_function" and float_modules and in_modules(node, float_modules):
            node.meta[_KEY] = QuantizationAnnotation(_annotated=True)
            kept += 1
    return kept


def annotate_clamps(model: GraphModule, config) -> int:
    """Annotate each ``conv/linear → hardtanh`` (the layer's only user) as one quantized unit; returns how many."""
    fused = 0
    for clamp in model.graph.nodes:
        layer = clamp.args[0] if clamp.op == "call_function" and clamp.target in _CLAMPS else None
        if not (isinstance(layer, Node) and layer.op == "call_function" and layer.target in _LAYERS):
            continue
        if len(layer.users) != 1 or _annotated(layer) or _annotated(clamp):
            continue
        qspecs = {layer.args[0]: config.input_activation, layer.args[1]: config.weight}
        bias = layer.args[2] if len(layer.args) > 2 else None
        if isinstance(bias, Node) and config.bias is not None:
            qspecs[bias] = config.bias
        layer.meta[_KEY] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        clamp.meta[_KEY] = QuantizationAnnotation(output_qspec=config.output_activation, _annotated=True)
        fused += 1
    return fused


def annotate_adds(model: GraphModule, config) -> int:
    """Annotate each add of two activations (a residual; not a constant, which is no activation to observe) not
    yet annotated (nor kept float) with ``config``: both inputs and the output int8, so the file has an int8 ADD with
    no DEQUANTIZE or QUANTIZE around it; returns how many."""
    added = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in _ADDS or _annotated(node):
            continue
        inputs = node.args[:2]
        if not all(isinstance(x, Node) and x.op != "get_attr" for x in inputs):
            continue
        node.meta[_KEY] = QuantizationAnnotation(
            input_qspec_map={x: config.input_activation for x in inputs},
            output_qspec=config.output_activation,
            _annotated=True,
        )
        added += 1
    return added


def split_hardswish(model: GraphModule, float_modules: tuple = ()) -> int:
    """Rewrite each hard-swish outside ``float_modules`` as ``x · hardsigmoid(x)`` in place, the two new nodes
    tagged for ``annotate_split_hardswish``; returns how many. An in-place hard-swish whose input has other readers
    is left whole (they would read the activation, which the out-of-place rewrite no longer writes)."""
    graph, split = model.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in _HARDSWISH or in_modules(node, float_modules):
            continue
        x = node.args[0]
        if node.target is torch.ops.aten.hardswish_.default and len(x.users) > 1:
            continue
        with graph.inserting_before(node):
            gate = graph.call_function(torch.ops.aten.hardsigmoid.default, (x,))
            product = graph.call_function(torch.ops.aten.mul.Tensor, (x, gate))
        for new, role in ((gate, "gate"), (product, "product")):
            new.meta.update({k: v for k, v in node.meta.items() if k != _KEY}, **{_SPLIT: role})
        node.replace_all_uses_with(product)
        graph.erase_node(node)
        split += 1
    if split:
        model.recompile()
    return split


def annotate_split_hardswish(model: GraphModule, config) -> int:
    """Annotate the parts ``split_hardswish`` made: every input and output int8 (the hardsigmoid's output is what
    keeps LiteRT from fusing a HARD_SWISH back); returns how many nodes."""
    annotated = 0
    for node in model.graph.nodes:
        if node.meta.get(_SPLIT) is None or _annotated(node):
            continue
        node.meta[_KEY] = QuantizationAnnotation(
            input_qspec_map={x: config.input_activation for x in node.args if isinstance(x, Node)},
            output_qspec=config.output_activation,
            _annotated=True,
        )
        annotated += 1
    return annotated


def _annotated(node: Node) -> bool:
    annotation = node.meta.get(_KEY)
    return annotation is not None and annotation._annotated


class _FloatMeans(Interpreter):
    """Runs a converted graph as float (every quantize/dequantize passes its input through) and sums each
    layer's per-channel input mean, one image at a time."""

    def __init__(self, model: GraphModule, layers: list) -> None:
        super().__init__(model)
        self.layers = set(layers)
        self.sums: dict = {}

    def call_function(self, target, args, kwargs):
        return args[0] if target in _QDQ else super().call_function(target, args, kwargs)

    def run_node(self, node: Node):
        if node in self.layers:
            x = self.env[node.args[0]].double()
            mean = x.mean(dim=(0, 2, 3)) if x.ndim == 4 else x.reshape(-1, x.shape[-1]).mean(0)
            self.sums[node] = self.sums.get(node, 0) + mean
        return super().run_node(node)


def correct_biases(model: GraphModule, calibration: np.ndarray) -> int:
    """Subtract ``ΔW·E[x]`` from the bias of every quantized conv/linear of ``model`` (converted with
    ``fold_quantize=False``, so each weight is still float behind its quantize/dequantize), in place; returns how
    many layers were corrected. Layers left in float, or without a bias, are left alone."""
    layers = [n for n in model.graph.nodes if n.op == "call_function" and n.target in _LAYERS]
    means = _FloatMeans(model, layers)
    with torch.no_grad():
        for row in calibration:
            means.run(torch.from_numpy(np.ascontiguousarray(row[None], dtype=np.float32)))
    corrected = 0
    with torch.no_grad():
        for layer in layers:
            bias = layer.args[2] if len(layer.args) > 2 else None
            weight = _root(layer.args[1])
            if not isinstance(bias, Node) or bias.op != "get_attr" or weight is None or weight is layer.args[1]:
                continue
            delta = _evaluate(model, layer.args[1]).double() - _fetch(model, weight.target).double()
            groups = int(layer.args[6]) if layer.target in _CONVS and len(layer.args) > 6 else 1
            shift = _output_shift(delta, means.sums[layer] / len(calibration), groups)
            if shift is None:
                continue
            old = _fetch(model, bias.target)
            _assign(model, bias.target, (old.double() - shift).to(old.dtype))
            corrected += 1
    return corrected


def _output_shift(delta_w: torch.Tensor, mean: torch.Tensor, groups: int) -> torch.Tensor | None:
    """``ΔW·E[x]`` per output channel (convolutions: borders, where padding reads zeros, are ignored)."""
    out_ch, per_group = delta_w.shape[:2]
    if per_group * groups != mean.shape[0] or out_ch % groups:
        return None
    summed = delta_w.reshape(out_ch, per_group, -1).sum(dim=2).reshape(groups, out_ch // groups, per_group)
    return torch.einsum("goi,gi->go", summed, mean.reshape(groups, per_group)).reshape(out_ch)


def _root(node) -> Node | None:
    """The ``get_attr`` a weight's quantize/dequantize chain starts from (the node itself when not quantized)."""
    while isinstance(node, Node) and node.op == "call_function" and node.target in _QDQ:
        node = node.args[0]
    return node if isinstance(node, Node) and node.op == "get_attr" else None


def _evaluate(model: GraphModule, node) -> torch.Tensor:
    """The value of a constant subgraph (a weight's quantize → dequantize), computed as the graph would."""
    if not isinstance(node, Node):
        return node
    if node.op == "get_attr":
        return _fetch(model, node.target)
    args = [_evaluate(model, a) for a in node.args]
    kwargs = {k: _evaluate(model, v) for k, v in node.kwargs.items()}
    return node.target(*args, **kwargs)


def _fetch(model: GraphModule, target: str) -> torch.Tensor:
    owner, _, name = target.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, name)


def _assign(model: GraphModule, target: str, value: torch.Tensor) -> None:
    """Replace the constant ``target`` (never writing into the tensor: it may be the caller's own parameter)."""
    owner, _, name = target.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if isinstance(getattr(module, name), torch.nn.Parameter):
        value = torch.nn.Parameter(value, requires_grad=False)
    setattr(module, name, value)
