"""Making onnxruntime sessions: the one place an ``InferenceSession`` is created.

``create_session`` resolves the providers (``runtime/providers.py``: short names, no silent fallback), sets the
session options edgecnn uses, and then checks that the session really kept every provider that was asked for:
onnxruntime drops a provider whose libraries fail to load (CUDA without cuDNN, say) with only a log line, and a
benchmark of "CUDA" that ran on the CPU is worse than no benchmark. Only onnxruntime (and, to read a card,
onnx) is imported here: no torch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from ...core.errors import ArtifactError, InputError, ProviderUnavailableError
from .. import openvino as _openvino
from ..providers import _split, get_provider, resolve


@dataclass(frozen=True)
class _Source:
    """What onnxruntime opens (a path as text, or the model's bytes) and how messages name it."""

    source: str | bytes
    name: str
    shown: str

    def __str__(self) -> str:
        return self.shown


def _source(path: str | os.PathLike | bytes) -> _Source:
    if isinstance(path, bytes):
        return _Source(path, "the in-memory model", "the in-memory model")
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    return _Source(str(path), path.name, str(path))


_GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(
    *,
    threads: int | None = None,
    graph_opt: str = "all",
    profile: bool = False,
    optimized_model_path: str | os.PathLike | None = None,
) -> ort.SessionOptions:
    """SessionOptions as edgecnn uses them: ``threads`` intra-op threads (``None``: ORT's default, one per
    physical core), one inter-op thread (CNNs are a chain: parallel branches gain nothing), sequential
    execution, the given graph optimization level, and node-to-provider recording on.
    """
    if graph_opt not in _GRAPH_OPT:
        raise InputError(f"unknown graph optimization level {graph_opt!r}; choose one of {', '.join(_GRAPH_OPT)}")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be at least 1, got {threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _GRAPH_OPT[graph_opt]
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initializers etc. are noise here
    # Costs nothing at run time; lets node_assignment() say which provider took which node.
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if profile:
        so.enable_profiling = True
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    return so


def create_session(
    path: str | os.PathLike | bytes,
    providers: str | Sequence[str] = ("cpu",),
    *,
    threads: int | None = None,
    graph_opt: str = "all",
    precision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    sess_options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """Open an ONNX file on the given onnxruntime providers, and make sure it really runs on them.

    Args:
        path: the ``.onnx`` (or ``.ort``) file, or an ONNX model's bytes.
        providers: short names in priority order (``"cuda"``, ``("tensorrt", "cuda")``, ``"cpu"`` …).
        threads: intra-op threads; ``None`` leaves ORT's default.
        graph_opt: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"`` (default).
        precision: the model's precision for TensorRT's flags; read from the file's card when ``None`` and
            TensorRT is asked for.
        cache_dir: TensorRT engine cache folder.
        sess_options: SessionOptions to use instead of ``session_options(threads=, graph_opt=)``.

    Raises:
        ArtifactError: the file is missing or onnxruntime cannot load it.
        ProviderUnavailableError: a provider is not in this build, or onnxruntime dropped it (with ORT's reason).
    """
    path = _source(path)
    names = _split(providers)
    wanted = [get_provider(n) for n in names]
    resolved = _resolve(path, names, precision=precision, cache_dir=cache_dir, threads=threads)
    so = sess_options or session_options(threads=threads, graph_opt=graph_opt)
    messages: list[str] = []
    try:
        # enable_fallback=0: onnxruntime would otherwise print the error and retry on CPU behind our back.
        sess = _create(path, so, resolved, messages if len(resolved) > 1 else None)
    except ProviderUnavailableError:  # already one clear line (no OpenVINO device of the asked kind)
        raise
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, RuntimeError …)
        reason = " ".join(str(exc).split())
        if any(p.name != "cpu" for p in wanted) and _looks_like_provider_failure(reason):
            raise ProviderUnavailableError(
                f"onnxruntime could not start {', '.join(p.name for p in wanted)} for {path.name}: {reason}"
            ) from exc
        raise ArtifactError(f"onnxruntime cannot load {path}: {reason}") from exc
    if not sess.get_outputs():  # onnxruntime loads such a graph, then refuses every run with a traceback
        raise ArtifactError(f"{path}: the graph has no outputs, so it computes nothing; export the model again")
    got = sess.get_providers()
    dropped = [p for p in wanted if p.ort_name not in got]
    if dropped:
        why = "; ".join(m for m in messages if m) or "no reason was logged"
        raise ProviderUnavailableError(
            f"onnxruntime dropped {', '.join(p.name for p in dropped)} when opening {path.name} "
            f"(session uses {', '.join(got)}): {why}; {dropped[0].install}"
        )
    return sess


def _resolve(path: _Source, names: list[str], *, precision, cache_dir, threads) -> list[tuple[str, dict]]:
    """``providers.resolve`` (which refuses missing ones), with TensorRT's precision read from the card when not
    given, and its engine cache folder made."""
    resolved = resolve(names, precision=precision, cache_dir=cache_dir, threads=threads)
    if precision is None and any(get_provider(n).name == "tensorrt" for n in names):
        precision = model_precision(path.source)
        resolved = resolve(names, precision=precision, cache_dir=cache_dir, threads=threads)
    for _, opts in resolved:
        if "trt_engine_cache_path" in opts:
            Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    return resolved


def _create(path: _Source, so: ort.SessionOptions, resolved, messages: list[str] | None) -> ort.InferenceSession:
    """Create the session; when ``messages`` is a list, collect ORT's warnings/errors logged meanwhile.

    A provider whose shared libraries fail to load is dropped with only a log line; catching the log is the
    one way to tell the user why. The callback is global in onnxruntime, so it is installed only around the
    creation of sessions that involve a non-CPU provider, and removed right after.
    """
    plugin = any(name == _openvino.ORT_NAME for name, _ in resolved)
    if plugin:  # plugin providers join a session by device, on its options, never through providers=
        _openvino.add_providers(so, resolved)
    kwargs = {} if plugin else {"providers": resolved}
    if messages is None:
        return ort.InferenceSession(path.source, so, enable_fallback=0, **kwargs)

    def sink(severity, category, logid, location, message):  # noqa: ARG001 - ORT's callback signature
        if severity >= 2:
            messages.append(" ".join(str(message).split()))

    ort.set_default_logger_callback(sink, 2)
    # The session logger feeds the same callback; let its warnings through too (to the list, not stderr).
    so.log_severity_level = min(so.log_severity_level, 2)
    try:
        # onnxruntime's Python layer warns (rather than logs) about providers it will not register.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sess = ort.InferenceSession(path.source, so, enable_fallback=0, **kwargs)
        messages.extend(" ".join(str(w.message).split()) for w in caught)
        return sess
    finally:
        ort.set_default_logger_callback(None)


def _looks_like_provider_failure(reason: str) -> bool:
    r = reason.lower()
    return any(w in r for w in ("executionprovider", "cuda", "cudnn", "tensorrt", "libnv", "provider", ".so", ".dll"))


def model_precision(path: str | os.PathLike | bytes) -> str | None:
    """The precision (``fp32``/``fp16``/``int8``) in the file's edgecnn card, or ``None`` without one."""
    try:
        import onnx

        from ...core.card import ModelCard

        model = (
            onnx.load_from_string(path) if isinstance(path, bytes) else onnx.load(str(path), load_external_data=False)
        )
        card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
        return card.precision if card else None
    except Exception:  # a card is a hint for TensorRT flags; without one TensorRT still runs at fp32
        return None


def node_assignment(
    session_or_path, providers: str | Sequence[str] = ("cpu",), **session_kwargs
) -> dict[str, int] | None:
    """How many nodes of the optimized graph each provider took: ``{"CPUExecutionProvider": 101}``.

    Counts come from onnxruntime's own record (``session.record_ep_graph_assignment_info``), taken when the
    graph is partitioned between providers: after the provider-independent (basic) rewrites such as constant
    folding, before the provider-specific fusions (Conv+Relu …). A session made by ``create_session`` already
    records; for a path, a session is made on ``providers``; a ``Runner`` answers for itself.

    Returns:
        The counts in the session's provider order, or ``None`` when this onnxruntime cannot say
        (built without the recording API, or a session made without recording).
    """
    sess = session_or_path
    if isinstance(sess, (str, os.PathLike)):
        sess = create_session(session_or_path, providers, **session_kwargs)
    if hasattr(sess, "node_assignment"):  # a Runner (OpenVINO's own runtime: the whole graph is its)
        return sess.node_assignment()
    getter = getattr(sess, "get_provider_graph_assignment_info", None)
    if getter is None:
        return None
    try:
        subgraphs = getter()
    except Exception:  # recording was not enabled for this session
        return None
    counts: dict[str, int] = {}
    for sg in subgraphs:
        counts[sg.ep_name] = counts.get(sg.ep_name, 0) + len(sg.get_nodes())
    if not counts:
        return None
    order = {name: i for i, name in enumerate(sess.get_providers())}
    return dict(sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order))))
