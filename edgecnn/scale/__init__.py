"""Beyond one machine: batch prediction (Ray Data) and export/benchmark sweeps (Ray tasks).

    from edgecnn.scale import predict_dataset, sweep

    summary = predict_dataset("m.onnx", "s3://bucket/images/", "preds.parquet", address="auto")
    result = sweep(["mobilenet_v2", "resnet18"], ["fp32", "int8"], "sweep_out", bench=True)

Ray is the ``edgecnn[ray]`` extra and is imported only when one of these runs (never by ``import edgecnn`` or
the device commands); without it they raise ``RayMissingError``: "Ray is not installed: pip install
'edgecnn[ray]'". See docs/SCALE.md.
"""

from __future__ import annotations

from ._ray import RAY_HINT, RayMissingError, require_ray
from .dataset import PredictSummary, predict_dataset
from .sweep import SweepResult, sweep

__all__ = ["predict_dataset", "PredictSummary", "sweep", "SweepResult", "RayMissingError", "RAY_HINT", "require_ray"]
