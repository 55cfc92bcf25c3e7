"""onnxruntime execution providers by short name: what each is, whether this build has it, how to get it.

``resolve(["cuda"])`` turns short names into the ``(ORT name, options)`` list that ``InferenceSession`` takes,
and refuses — never silently falls back — when the installed onnxruntime lacks a provider. ``make_session``
then checks that the session really kept every provider that was asked for: onnxruntime drops a provider whose
libraries fail to load (CUDA without cuDNN, say) with only a log line, and a benchmark of "CUDA" that ran on
the CPU is worse than no benchmark.

Only onnxruntime (and, when asked to read a card, onnx) is imported here: no torch.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from ..core.errors import InputError, ProviderUnavailableError
from . import openvino as _openvino

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Provider:
    """One execution provider.

    Attributes:
        name: short name used on the command line (``"cuda"``).
        ort_name: onnxruntime's name (``"CUDAExecutionProvider"``).
        kind: ``"cpu"``, ``"gpu"``, ``"mobile"``, ``"accelerator"`` (NPU/DSP/FPGA) or ``"remote"``.
        install: what to install to get it, said as an instruction.
        options: default provider options (TensorRT's cache path and precision flags are added by ``resolve``).
        device: where IO binding should put inputs/outputs (``"cuda"`` for CUDA-memory providers, else ``"cpu"``).
        fallback: ORT names to list after this one for the nodes it cannot run (ORT's recommended order).
    """

    name: str
    ort_name: str
    kind: str
    install: str
    options: Mapping[str, object] = field(default_factory=dict)
    device: str = "cpu"
    fallback: tuple[str, ...] = (CPU,)


_GPU_WHEEL = (
    "pip uninstall onnxruntime && pip install onnxruntime-gpu; it needs an NVIDIA driver and the "
    "CUDA 12 + cuDNN 9 libraries (Linux/Windows x64)"
)

# One table, in the order `edgecnn providers` prints it.
_TABLE: tuple[Provider, ...] = (
    Provider("cpu", CPU, "cpu", "included in every onnxruntime package", fallback=()),
    Provider(
        "cuda",
        "CUDAExecutionProvider",
        "gpu",
        f"install onnxruntime-gpu: {_GPU_WHEEL}",
        {"device_id": 0},
        device="cuda",
    ),
    Provider(
        "tensorrt",
        "TensorrtExecutionProvider",
        "gpu",
        f"install onnxruntime-gpu: {_GPU_WHEEL}, plus the TensorRT 10 libraries on the library path "
        "(pip install tensorrt, or NVIDIA's packages)",
        {"device_id": 0, "trt_engine_cache_enable": True, "trt_timing_cache_enable": True},
        device="cuda",
        fallback=("CUDAExecutionProvider", CPU),
    ),
    # A plugin beside our onnxruntime (see runtime/openvino.py), not the onnxruntime-openvino package.
    Provider("openvino", "OpenVINOExecutionProvider", "accelerator", _openvino.INSTALL),
    Provider("dnnl", "DnnlExecutionProvider", "cpu", "build onnxruntime from source with --use_dnnl (no PyPI wheel)"),
    Provider(
        "xnnpack",
        "XnnpackExecutionProvider",
        "cpu",
        "use an onnxruntime build with --use_xnnpack (onnxruntime-android / onnxruntime-mobile packages, "
        "or build from source)",
    ),
    Provider(
        "nnapi",
        "NnapiExecutionProvider",
        "mobile",
        "Android only: the onnxruntime-android AAR (com.microsoft.onnxruntime:onnxruntime-android)",
    ),
    Provider(
        "coreml",
        "CoreMLExecutionProvider",
        "mobile",
        "macOS/iOS only: pip install onnxruntime on macOS, or the onnxruntime-objc / onnxruntime-c pods",
    ),
    Provider(
        "qnn",
        "QNNExecutionProvider",
        "accelerator",
        "pip install onnxruntime-qnn (Windows on Snapdragon) or a build with --use_qnn and the QNN SDK",
        {"backend_path": "QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so"},
    ),
    Provider(
        "rocm",
        "ROCMExecutionProvider",
        "gpu",
        "an onnxruntime build for AMD ROCm (AMD's onnxruntime-rocm wheels; removed upstream after 1.22, use migraphx)",
    ),
    Provider(
        "migraphx",
        "MIGraphXExecutionProvider",
        "gpu",
        "pip install onnxruntime-migraphx (AMD ROCm), or a build with --use_migraphx",
    ),
    Provider(
        "directml",
        "DmlExecutionProvider",
        "gpu",
        "Windows only: pip uninstall onnxruntime && pip install onnxruntime-directml",
    ),
    Provider("cann", "CANNExecutionProvider", "accelerator", "Huawei Ascend: pip install onnxruntime-cann"),
    Provider(
        "vitisai",
        "VitisAIExecutionProvider",
        "accelerator",
        "AMD Ryzen AI / Vitis AI: the Ryzen AI software's onnxruntime-vitisai package",
    ),
    Provider("webgpu", "WebGpuExecutionProvider", "gpu", "onnxruntime-web in a browser, or a build with --use_webgpu"),
    Provider(
        "azure",
        "AzureExecutionProvider",
        "remote",
        "included in the standard wheels; runs models on an Azure endpoint, not on this machine",
    ),
)

PROVIDERS: dict[str, Provider] = {p.name: p for p in _TABLE}
_BY_ORT = {p.ort_name.lower(): p for p in _TABLE}


def default_cache_dir() -> Path:
    """Where TensorRT engines and timing caches go: ``$EDGECNN_CACHE/trt`` or ``~/.cache/edgecnn/trt``."""
    root = os.environ.get("EDGECNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgecnn")
    return Path(root) / "trt"


def get_provider(name: str) -> Provider:
    """Look a provider up by short name (``"cuda"``) or ORT name (``"CUDAExecutionProvider"``).

    Raises:
        ProviderUnavailableError: the name is not a provider edgecnn knows.
    """
    key = name.strip().lower()
    if key in PROVIDERS:
        return PROVIDERS[key]
    if key in _BY_ORT:
        return _BY_ORT[key]
    raise ProviderUnavailableError(
        f"unknown execution provider {name!r}; known: {', '.join(PROVIDERS)} (see `edgecnn providers`)"
    )


def _build(plugins: bool = True) -> list[str]:
    """The ORT names this onnxruntime offers; with ``plugins``, after loading the OpenVINO plugin if installed."""
    names = ort.get_available_providers()
    if plugins and _openvino.ORT_NAME not in names:
        # the plugin once loaded lists OpenVINO where it offers a device; elsewhere OpenVINO's own runtime may
        if _openvino.backend() is not None:
            names = [*names, _openvino.ORT_NAME]
    return names


def available() -> list[str]:
    """Short names of the providers this onnxruntime build offers (ORT names for ones edgecnn does not know).

    Being listed means the provider is compiled in, not that its libraries (CUDA, TensorRT …) load; a session
    made with ``make_session`` checks that.
    """
    names = []
    for ort_name in _build():
        if ort_name.startswith(_openvino.ORT_NAME + "."):  # the plugin's meta devices (AUTO): not a provider
            continue
        known = _BY_ORT.get(ort_name.lower())
        names.append(known.name if known else ort_name)
    order = {p.name: i for i, p in enumerate(_TABLE)}
    return sorted(names, key=lambda n: order.get(n, len(order)))


def is_available(name: str) -> bool:
    """Whether this onnxruntime build offers the provider (short or ORT name)."""
    p = get_provider(name)
    return p.ort_name in _build(plugins=p.ort_name == _openvino.ORT_NAME)


def parse_entries(providers: str | Iterable) -> list[list[str]]:
    """The ``--ep`` syntax: comma-separated entries, each checked on its own session; ``+`` joins providers
    into one session's priority list. ``"cpu,tensorrt+cuda"`` → ``[["cpu"], ["tensorrt", "cuda"]]``; a
    sequence of names or of name sequences works too. Names come back as short names.
    """
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    entries = []
    for item in items:
        names = item.split("+") if isinstance(item, str) else list(item)
        names = [get_provider(n).name for n in names if n and n.strip()]
        if names:
            entries.append(names)
    if not entries:
        raise InputError("no execution provider given; e.g. --ep cpu or --ep cpu,cuda")
    return entries


def _split(names: str | Iterable[str]) -> list[str]:
    if isinstance(names, str):
        names = names.split(",")
    out = [n.strip() for n in names if n and n.strip()]
    if not out:
        raise InputError("no execution provider given; e.g. --ep cpu or --ep cuda,cpu")
    return out


def resolve(
    names: str | Iterable[str],
    *,
    precision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> list[tuple[str, dict]]:
    """Turn short names into the providers list for ``onnxruntime.InferenceSession``.

    Each requested provider must be in this build; its fallbacks (CUDA after TensorRT, CPU after any
    accelerator, as onnxruntime recommends for nodes the accelerator cannot run) are appended when the
    build has them. Nothing is dropped silently.

    Args:
        names: short or ORT names, a list or a comma-separated string, in priority order.
        precision: ``"fp16"``/``"int8"`` turn on TensorRT's matching precision flags.
        cache_dir: TensorRT engine/timing cache folder (default ``default_cache_dir()``).
        threads: XNNPACK's own thread pool size (it does not use the session's).

    Returns:
        ``[(ort_name, options), ...]`` in priority order.

    Raises:
        ProviderUnavailableError: an unknown name, or a provider this onnxruntime build does not have.
    """
    requested = [get_provider(n) for n in _split(names)]
    build = _build(plugins=any(p.ort_name == _openvino.ORT_NAME for p in requested))
    for p in requested:
        if p.ort_name not in build:
            if p.ort_name == _openvino.ORT_NAME:  # two backends, each with its own reason
                raise ProviderUnavailableError(_openvino.unavailable_message())
            raise ProviderUnavailableError(
                f"execution provider {p.name!r} is not in this onnxruntime build ({', '.join(build)}); {p.install}"
            )
    out: dict[str, dict] = {}
    for p in requested:
        out.setdefault(p.ort_name, _options(p, precision, cache_dir, threads))
    for p in requested:
        for fb in p.fallback:
            if fb in build and fb not in out:
                out[fb] = _options(_BY_ORT[fb.lower()], precision, cache_dir, threads)
    # CPU last: a fallback listed by an earlier provider must not outrank a later requested one.
    if CPU in out and list(out)[-1] != CPU and CPU not in {p.ort_name for p in requested}:
        out[CPU] = out.pop(CPU)
    return list(out.items())


def _options(p: Provider, precision: str | None, cache_dir, threads: int | None) -> dict:
    opts = dict(p.options)
    if p.name == "tensorrt":
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        opts["trt_engine_cache_path"] = str(cache)
        opts["trt_timing_cache_path"] = str(cache)
        # fp16 models need TensorRT's fp16 mode to keep their precision; QDQ (int8) models need int8 mode for
        # TensorRT to honour the Q/DQ pairs, and fp16 for the layers that stay float.
        if precision in ("fp16", "int8"):
            opts["trt_fp16_enable"] = True
        if precision == "int8":
            opts["trt_int8_enable"] = True
    if p.name == "xnnpack" and threads:
        opts["intra_op_num_threads"] = int(threads)
    if p.ort_name == _openvino.ORT_NAME:
        opts.update(_openvino.options(threads))
    return opts


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


def make_session(
    path: str | os.PathLike,
    providers: str | Sequence[str] = ("cpu",),
    *,
    threads: int | None = None,
    graph_opt: str = "all",
    precision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    sess_options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """Open an ONNX file on the given providers, and make sure it really runs on them.

    Args:
        path: the ``.onnx`` (or ``.ort``) file.
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
    from ..core.errors import ArtifactError

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    names = _split(providers)
    wanted = [get_provider(n) for n in names]
    resolved = resolve(names, precision=precision, cache_dir=cache_dir, threads=threads)  # refuses missing ones
    if precision is None and any(p.name == "tensorrt" for p in wanted):
        precision = model_precision(path)
        resolved = resolve(names, precision=precision, cache_dir=cache_dir, threads=threads)
    for _, opts in resolved:
        if "trt_engine_cache_path" in opts:
            Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    so = sess_options or session_options(threads=threads, graph_opt=graph_opt)
    if any(name == _openvino.ORT_NAME for name, _ in resolved) and _openvino.backend() == _openvino.RUNTIME:
        return _openvino.runtime_session(path, resolved, threads or so.intra_op_num_threads or None)
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


def _create(path: Path, so: ort.SessionOptions, resolved, messages: list[str] | None) -> ort.InferenceSession:
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
        return ort.InferenceSession(str(path), so, enable_fallback=0, **kwargs)

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
            sess = ort.InferenceSession(str(path), so, enable_fallback=0, **kwargs)
        messages.extend(" ".join(str(w.message).split()) for w in caught)
        return sess
    finally:
        ort.set_default_logger_callback(None)


def _looks_like_provider_failure(reason: str) -> bool:
    r = reason.lower()
    return any(w in r for w in ("executionprovider", "cuda", "cudnn", "tensorrt", "libnv", "provider", ".so", ".dll"))


def model_precision(path: str | os.PathLike) -> str | None:
    """The precision (``fp32``/``fp16``/``int8``) in the file's edgecnn card, or ``None`` without one."""
    try:
        import onnx

        from ..core.card import ModelCard

        model = onnx.load(str(path), load_external_data=False)
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
    folding, before the provider-specific fusions (Conv+Relu …). A session made by ``make_session`` already
    records; for a path, a session is made on ``providers``.

    Returns:
        The counts in the session's provider order, or ``None`` when this onnxruntime cannot say
        (built without the recording API, or a session made without recording).
    """
    sess = session_or_path
    if isinstance(sess, (str, os.PathLike)):
        sess = make_session(session_or_path, providers, **session_kwargs)
    if hasattr(sess, "node_assignment"):  # OpenVINO's own runtime: the whole graph is its (openvino_session.py)
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
