"""Ray, imported only here and only when asked: the device install and the plain CLI never load it.

``require_ray`` turns a missing extra into one line (exit 2) instead of a traceback; ``connect`` joins the
cluster at ``address`` (``ray start --head`` prints it), starts a local Ray when none is given, or reuses the one
this process already has (tests, notebooks). The size limits set in this process (``EDGECNN_MAX_IMAGE_PIXELS``,
``EDGECNN_MAX_INPUT_ELEMENTS``) go to every worker in the job's ``runtime_env``; a Ray already initialised here
keeps its own.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import EdgeCNNError
from ..core.sizes import limit_env

RAY_HINT = "Ray is not installed: pip install 'edgecnn[ray]'"


class RayMissingError(EdgeCNNError):
    """The ``ray`` extra is not installed (the CLI prints the message and exits 2)."""


def require_ray() -> Any:
    """The ``ray`` module (with Ray Data), or ``RayMissingError`` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: a bare ray lacks it)
    except ImportError:
        raise RayMissingError(RAY_HINT) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Make sure this process is connected to Ray; returns the ``ray`` module.

    Args:
        address: a cluster (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.1:6379"``); ``None`` uses the Ray
            already initialised here, else starts a local one.
        num_cpus: CPUs of a local Ray started here (default: all).
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # Usage statistics would try to reach the network; nothing here asks for them.
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = int(num_cpus)
    limits = limit_env()
    if limits:  # the workers decode images and check sizes too: with the limits this process was given
        kwargs["runtime_env"] = {"env_vars": limits}
    ray.init(address=address, **kwargs)
    return ray


def cluster_cpus(ray: Any) -> int:
    """CPUs Ray can schedule on, over all nodes (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def alive_nodes(ray: Any) -> list[dict]:
    """``{"node_id", "hostname", "cpus"}`` of each live node with CPUs, largest first."""
    nodes = [
        {
            "node_id": n["NodeID"],
            "hostname": n.get("NodeManagerHostname") or n.get("NodeManagerAddress", "?"),
            "cpus": int(n.get("Resources", {}).get("CPU", 0)),
        }
        for n in ray.nodes()
        if n.get("Alive")
    ]
    return sorted((n for n in nodes if n["cpus"] > 0), key=lambda n: -n["cpus"])
