"""onnxruntime behind the ``Runner`` interface: any of its execution providers, through ``create_session``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import openvino as _openvino
from ..providers import get_provider
from ..runner import IOSpec, Runner, RunnerOptions
from ..session import ORT_DTYPES
from .session import create_session, node_assignment, session_options


def io_spec(arg) -> IOSpec:
    """An ``IOSpec`` from onnxruntime's ``NodeArg`` (or anything with ``name``, ``shape``, ``type``)."""
    dtype = ORT_DTYPES.get(arg.type)
    return IOSpec(arg.name, tuple(arg.shape), np.dtype(dtype) if dtype else None, arg.type)


class OnnxRuntimeRunner(Runner):
    """A model on an onnxruntime ``InferenceSession``.

    Attributes:
        session: the ``InferenceSession``, for onnxruntime-only features (profiling, IO binding, node assignment).
    """

    runtime = "onnxruntime"

    def __init__(self, session) -> None:
        self.session = session
        self.inputs = tuple(io_spec(a) for a in session.get_inputs())
        self.outputs = tuple(io_spec(a) for a in session.get_outputs())
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        return self.session.run(list(outputs) if outputs else None, dict(feeds))

    def info(self) -> dict:
        providers = list(self.session.get_providers())
        so = self.session.get_session_options()
        precision = {name: _openvino.precision_of(o) for name, o in self.session.get_provider_options().items()}
        cuda = any(_device(p) == "cuda" for p in providers)
        return {
            "runtime": self.runtime,
            "providers": providers,
            "device": "cuda" if cuda else "cpu",
            "threads": so.intra_op_num_threads,
            "inter_op_threads": so.inter_op_num_threads,
            "backend": "onnxruntime",
            "precision": {name: hint for name, hint in precision.items() if hint} or None,
        }

    def node_assignment(self) -> dict[str, int] | None:
        return node_assignment(self.session)

    def bind(self, feeds: Mapping[str, np.ndarray]):
        session = self.session  # the session's own call, nothing around it, is what gets timed
        return lambda: session.run(None, feeds)


def _device(ort_name: str) -> str:
    try:
        return get_provider(ort_name).device
    except Exception:  # a provider edgecnn has no row for
        return "cpu"


def open_onnxrt(source, options: RunnerOptions) -> OnnxRuntimeRunner:
    """The ``onnxruntime`` opener registered with ``runtime.runner``: a session made with ``options``."""
    so = None
    if options.profile or options.profile_prefix or options.optimized_model_path:
        so = session_options(
            threads=options.threads,
            graph_opt=options.graph_opt,
            profile=options.profile or bool(options.profile_prefix),
            optimized_model_path=options.optimized_model_path,
        )
        if options.profile_prefix:
            so.profile_file_prefix = str(options.profile_prefix)
    session = create_session(
        source,
        options.providers,
        threads=options.threads,
        graph_opt=options.graph_opt,
        precision=options.precision,
        cache_dir=options.cache_dir,
        sess_options=so,
    )
    return OnnxRuntimeRunner(session)
