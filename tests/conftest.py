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
