"""onnxruntime execution providers by short name: what each is, whether this build has it, how to get it.

``resolve(["cuda"])`` turns short names into the ``(ORT name, options)`` list that an onnxruntime session takes,
and refuses — never silently falls back — when the installed onnxruntime lacks a provider. Sessions are made by
``runtime.runner.open_runner`` (onnxruntime's in ``runtime/onnxrt/session.py``), which then checks that the
session really kept every provider that was asked for.

Only onnxruntime is imported here: no torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
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
    # A plugin beside our onnxruntime (see runtime/openvino/config.py), not the onnxruntime-openvino package.
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


def known_provider(name: str) -> Provider | None:
    """``get_provider``'s row, or ``None`` for a name only another runtime knows (LiteRT's ``builtin``)."""
    key = name.strip().lower()
    return PROVIDERS.get(key) or _BY_ORT.get(key)


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

    Being listed means the provider is compiled in, not that its libraries (CUDA, TensorRT …) load; a runner
    made with ``runtime.runner.open_runner`` checks that.
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


#: ``--ep`` names that only a runtime other than onnxruntime takes: LiteRT's own kernels, without its XNNPACK
#: delegate, for a ``.tflite`` (``runtime/litert``); onnxruntime refuses them when it opens a file.
RUNTIME_ONLY = ("builtin",)


def parse_entries(providers: str | Iterable) -> list[list[str]]:
    """The ``--ep`` syntax: comma-separated entries, each checked on its own session; ``+`` joins providers
    into one session's priority list. ``"cpu,tensorrt+cuda"`` → ``[["cpu"], ["tensorrt", "cuda"]]``; a
    sequence of names or of name sequences works too. Names come back as short names.
    """
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    entries = []
    for item in items:
        names = item.split("+") if isinstance(item, str) else list(item)
        names = [_short_name(n) for n in names if n and n.strip()]
        if names:
            entries.append(names)
    if not entries:
        raise InputError("no execution provider given; e.g. --ep cpu or --ep cpu,cuda")
    return entries


def _short_name(name: str) -> str:
    key = name.strip().lower()
    return key if key in RUNTIME_ONLY else get_provider(name).name


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
    """Turn short names into the providers list for an onnxruntime session.

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


def make_session(path, providers: str | Iterable = ("cpu",), **options):
    """Compatibility for ``edgecnn.make_session``: the onnxruntime session of ``open_runner(path, providers=...,
    **options)`` (``threads``, ``graph_opt``, ``precision``, ``cache_dir``), or the runner itself where another
    runtime opened it (OpenVINO's own runtime). New code calls ``runtime.runner.open_runner``."""
    from .runner import open_runner

    runner = open_runner(path, providers=providers, **options)
    return getattr(runner, "session", runner)
