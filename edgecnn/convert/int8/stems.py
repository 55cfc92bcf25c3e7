"""Float stems: where the first nodes of a graph can be kept in float, ending in one tensor (a block boundary).

A stem convolution reads 3 channels, too few for int8 dot products to pay (measured on MobileNetV2, one
thread: 673 µs in int8 against 370 µs in fp32), and the first high-resolution depthwise layers gain little,
while quantizing later means quantizing a larger tensor. Which cut is fastest depends on the model, so a
few cuts at block boundaries are made and the speed gate times them beside the others.
"""

from __future__ import annotations

import onnx

# where float stems are cut, as fractions of the convolutions: short ones for speed (a 3-channel stem convolution is
# slower in int8), longer ones for accuracy — EfficientNet-Lite0's most rounding-sensitive weights are its first
# 6 blocks' (each alone costs the logits 39–41 dB; float through 17 nodes: 0.957 agreement on unseen photos
# against 0.930 through 3, at 0.6× fp32's time)
STEM_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3)


def stem_cuts(model: onnx.ModelProto, fractions: tuple = STEM_FRACTIONS) -> list[int]:
    """Node counts K at which the graph's first K nodes end in one tensor (a block boundary), nearest to each
    fraction of its convolutions; distinct and ascending."""
    graph = model.graph
    last_use = {t: i for i, n in enumerate(graph.node) for t in n.input}
    live, cuts = set(), []
    for i, node in enumerate(graph.node):
        live |= set(node.output)
        live = {t for t in live if last_use.get(t, -1) > i}
        if len(live) == 1:
            cuts.append(i + 1)
    convs = [i for i, n in enumerate(graph.node) if n.op_type in ("Conv", "Gemm", "MatMul")]
    if not cuts or len(convs) < 8:
        return []
    wanted = {min(cuts, key=lambda c: abs(c - (convs[int(f * len(convs))] + 1))) for f in fractions}
    return sorted(k for k in wanted if k < len(graph.node) // 2)
