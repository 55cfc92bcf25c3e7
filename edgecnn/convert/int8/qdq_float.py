"""Nodes of a QDQ graph computed in float (the sensitivity fallback), and dead-node clean-up."""

from __future__ import annotations

import copy

import onnx

from ..fp16 import toposort


def float_fallback(qmodel: onnx.ModelProto, twin: onnx.ModelProto, nodes: tuple | set) -> list[str]:
    """Make the named nodes of a QDQ model compute in float, in place; returns the nodes it rewired.

    ``quantize_static(nodes_to_exclude=…)`` alone leaves an excluded node reading dequantized int8 activations,
    and onnxruntime's WeightBiasQuantization even re-quantizes its float weights at load time, so the node
    is not really float. Here each such node reads the float tensors of ``twin`` (the graph that was quantized)
    instead: weights from the original initializers, activations from before their QuantizeLinear. Where the
    quantizer had removed a Relu/Clip (its clipping done by the QuantizeLinear), that activation is re-added in
    float. Inputs whose float value is not available unchanged are left dequantized.
    """
    graph = qmodel.graph
    graphs = _Graphs(qmodel, twin)
    rewired = []
    for node in graph.node:
        tnode = graphs.twin_nodes.get(node.name)
        if node.name not in nodes or tnode is None:
            continue
        changed = False
        for idx, name in enumerate(node.input):
            dq = graphs.producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or idx >= len(tnode.input):
                continue
            source = graphs.float_source(dq, tnode.input[idx])
            if source is not None:
                node.input[idx] = source
                changed = True
        if changed:
            rewired.append(node.name)
    graph.node.extend(graphs.added)
    toposort(graph)
    remove_dead(qmodel)
    return rewired


class _Graphs:
    """The QDQ graph being rewired and the float twin it was quantized from, indexed once."""

    def __init__(self, qmodel: onnx.ModelProto, twin: onnx.ModelProto) -> None:
        self.graph = qmodel.graph
        self.twin_nodes = {n.name: n for n in twin.graph.node}
        self.twin_producer = {o: n for n in twin.graph.node for o in n.output}
        self.twin_inits = {i.name: i for i in twin.graph.initializer}
        self.inits = {i.name for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.added: list[onnx.NodeProto] = []
        self.redone: dict[str, onnx.NodeProto] = {}

    def float_source(self, dq: onnx.NodeProto, want: str) -> str | None:
        """The float tensor to read instead of ``dq``'s output, standing for the twin's ``want``; None: keep it."""
        if want in self.twin_inits:  # a weight or bias: the original float values
            if want not in self.inits:
                self.graph.initializer.append(copy.deepcopy(self.twin_inits[want]))
                self.inits.add(want)
            return want
        q = self.producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            return None
        source = q.input[0]
        made_by = self.producer.get(source)
        meant_by = self.twin_producer.get(want)
        if (made_by is None) != (meant_by is None):
            return None
        if made_by is not None and made_by.name != meant_by.name:
            if meant_by.op_type not in ("Relu", "Clip") or made_by.name != getattr(
                self.twin_producer.get(meant_by.input[0]), "name", None
            ):
                return None  # some other rewrite sits between them: keep the dequantized input
            # the quantizer removed this activation: redo it in float, once for all the float nodes that read
            # it (a ResNet block's output feeds the next block's first conv and its shortcut: two copies named
            # alike made an invalid graph)
            if meant_by.name not in self.redone:
                act = _float_activation(meant_by, source, want, self.twin_inits, self.inits, self.graph)
                self.redone[meant_by.name] = act
                self.added.append(act)
            source = self.redone[meant_by.name].output[0]
        return source


def _float_activation(
    meant_by: onnx.NodeProto, source: str, want: str, twin_inits: dict, inits: set, graph: onnx.GraphProto
) -> onnx.NodeProto:
    """A float copy of the Relu/Clip ``meant_by`` reading ``source``; its constant inputs added to ``graph``."""
    act = copy.deepcopy(meant_by)
    act.name = f"{meant_by.name}_float"
    act.input[0] = source
    del act.output[:]
    act.output.append(f"{want}_float")
    for extra in act.input[1:]:
        if extra and extra not in inits and extra in twin_inits:
            graph.initializer.append(copy.deepcopy(twin_inits[extra]))
            inits.add(extra)
    return act


def remove_dead(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nobody reads, and unused initializers, in place."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        kept = [n for n in graph.node if any(o in used for o in n.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
