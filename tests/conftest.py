"""Shared fixtures, kept generic: few threads, the reference state_dict lists, an offline torch.hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
from functools import cache
from pathlib import Path

import pytest
import torch

# The default run is spread over worker processes (pytest-xdist; pyproject's addopts say `-n auto`, which
# pytest_xdist_auto_num_workers below caps). The exporter's tracing, browsers and Ray workers keep one core busy
# at most, so a process per core fills the machine; each worker then takes its share of the cores for torch:
# on 2 cores, 2 workers × 1 thread ran the suite in 359 s against 436 s with 2 × 2 threads (573 s serially).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


def pytest_xdist_auto_num_workers(config):
    """One worker per core, at most 4: each imports torch and onnxruntime, and the run cannot end before its
    longest module (test_export.py, a third of the suite's time), which stays on one worker (--dist loadfile
    keeps each module's shared fixtures built once)."""
    return max(1, min(4, os.cpu_count() or 1))


REFERENCE_DIR = Path(__file__).parent / "reference"


@cache
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


# The trained fixtures the default run uses (googlenet's and mobilenet_v3_large's tests are slow-marked; they train
# it on demand), in the order they are trained: mobilenet_v2 first, since the modules that need it (test_executorch,
# test_litert, test_targets) come early and a worker waiting for a fixture does nothing meanwhile.
BACKGROUND_FIXTURES = ("mobilenet_v2", "resnet18", "unet")


def pytest_collection_finish(session):
    """On a first run (nothing cached), train the fixtures in a background process while the tests that need
    none run: the training (one thread) overlaps the suite instead of adding to it — on 2 cores with two test
    workers, 372 s for the whole first run against 359 s with the fixtures cached. The cache's per-model lock
    makes a test that needs a model still in training wait for it, and one that comes first train it itself;
    nothing is shared but the finished, atomically moved cache entry. Off with EDGECNN_BACKGROUND_TRAINING=0."""
    if os.environ.get("EDGECNN_BACKGROUND_TRAINING", "1") == "0":
        return
    if XDIST_WORKER not in (None, "gw0"):  # one trainer for the whole run: the first worker starts it
        return
    if not any("trained_checkpoint" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    module = _train_fixtures_module()
    missing = [n for n in BACKGROUND_FIXTURES if not module.is_cached(n)]
    if not missing:
        return
    root = module.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / "background-training.log", "w")
    session.config._edgecnn_trainer = subprocess.Popen(
        [sys.executable, str(Path(module.__file__)), "--train-only", "--models", ",".join(missing)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()


def pytest_sessionfinish(session):
    trainer = getattr(session.config, "_edgecnn_trainer", None)
    if trainer is not None and trainer.poll() is None:  # a run that ended before needing them all
        trainer.terminate()  # an interrupted training leaves no cache entry (it is moved into place whole)
        trainer.wait()
