"""Shared fixtures, kept generic: few threads, the reference state_dict lists, an offline torch.hub."""

from __future__ import annotations

import json
import urllib.error
from functools import lru_cache
from pathlib import Path

import pytest
import torch

# The suite runs on 2 cores shared with other jobs; more threads only add contention.
torch.set_num_threads(2)

REFERENCE_DIR = Path(__file__).parent / "reference"


@lru_cache(maxsize=None)
def _load_reference(name: str) -> dict:
    return json.loads((REFERENCE_DIR / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def reference():
    """``reference(name)`` -> tests/reference/NAME.json: ``{"num_params": int, "state_dict": {key: shape}}``."""
    return _load_reference


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch.hub directory under tmp_path, with downloads failing as they do without network.

    Returns the hub directory; published checkpoints are looked up in ``<hub>/checkpoints/``.
    """
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub


def _train_fixtures_module():
    """tools/train_fixtures.py, imported by path (tools/ is not a package)."""
    import importlib.util
    import sys

    name = "edgecnn_train_fixtures"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "tools" / "train_fixtures.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def trained_checkpoint():
    """``trained_checkpoint(name) -> Fixture``: a small zoo model briefly trained on real data, with its data.

    Names: resnet18, mobilenet_v2, mobilenet_v3_large, googlenet, unet (the default test set; alexnet, vgg11_bn
    and resnet50 work too but take longer to train). Classifiers learned scikit-learn's digits (32×32 RGB, 10
    classes); U-Net learned generated shapes (32×32, 3 classes). The returned ``Fixture`` has:

    * ``checkpoint`` — state_dict file for ``export(name, weights=...)``
    * ``num_classes``, ``input_size`` (an int), ``arch_options`` (e.g. ``{"width_mult": 0.5}``) — pass all three
      to ``export`` (``arch_options=``) so the architecture matches the checkpoint
    * ``calib_dir`` — folder of 256 PNG calibration images (for ``calib=``)
    * ``heldout`` — held-out images, preprocessed as the export's card says (N×3×H×W float32), and ``labels``
      (class indices, or N×H×W masks for U-Net); ``task``; ``torch_accuracy`` (held-out, after training)

    Trained once and cached under ``$EDGECNN_CACHE/fixtures/<key>`` (default ``~/.cache/edgecnn``), the key
    hashing tools/train_fixtures.py and the torch version; a first run trains all five in a few minutes.
    """
    module = _train_fixtures_module()
    return module.trained_fixture
