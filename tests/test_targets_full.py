"""The full-size matrix of issue 30 (``pytest -m slow``): each seed architecture exported to .tflite and .pte, fp32
and int8, at its default input size, each file reopened on its own runtime and judged against PyTorch.

EfficientNet-Lite0 runs with its ImageNet weights (installed with the test extra), so its int8 files are judged at
task level; the others are random-init (BatchNorm re-estimated), so their fp32 parity is judged and their int8
agreement reported. A model a runtime cannot take must be one line naming the operator, never a traceback.
"""

from __future__ import annotations

import pytest

MODELS = ["mobilenet_v2", "resnet50", "mobilenet_v3_large", "googlenet", "unet", "efficientnet_lite0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_full_size_tflite_and_pte_pass_parity_on_their_runtime(name, tmp_path):
    from edgecnn.pipeline import export

    weights = "imagenet" if name == "efficientnet_lite0" else None
    result = export(name, tmp_path / name, weights=weights, int8=True, formats="tflite,pte")
    made = {(a.format, a.precision): a for a in result.artifacts}
    assert set(made) == {(f, p) for f in ("tflite", "pte") for p in ("fp32", "int8")}
    for (fmt, precision), artifact in made.items():
        assert not artifact.failed, (fmt, precision, artifact.parity.failures)
        assert artifact.runtime["delegation"], (fmt, precision)
    if weights is not None:  # trained weights: int8 is judged at task level too
        assert all(made[(f, "int8")].parity.judged for f in ("tflite", "pte"))
    if name == "mobilenet_v3_large":  # hard-swish split for LiteRT: no int8 HARD_SWISH left outside XNNPACK
        delegation = made[("tflite", "int8")].runtime["delegation"]
        assert delegation["partitions"] == 1 and not delegation["other_ops"], delegation
