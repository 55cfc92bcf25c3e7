"""OpenVINO's configuration, and OpenVINO as an onnxruntime execution provider: the ``onnxruntime-ep-openvino``
plugin beside our onnxruntime.

Why the plugin and not OpenVINO's own runtime or ``onnxruntime-openvino``: the plugin is a shared library that
onnxruntime (≥ 1.23) loads next to its CPU provider, so a session on it is an ordinary ``InferenceSession`` —
predict, validate, selftest, bench and the node-assignment record work unchanged — and it measured as fast as
``openvino.Core().compile_model`` on the same files (tools/peer_bench.py times both). ``onnxruntime-openvino``
replaces the onnxruntime package itself, which the rest of edgecnn cannot share a process with.

A plugin provider is not in ``ort.get_available_providers()`` until its library is registered, and a session
takes it only through ``SessionOptions.add_provider_for_devices`` (listing it in ``providers=`` is dropped
without an error): ``register`` and ``add_providers`` below do both.

Precision: OpenVINO runs float layers in bf16 on CPUs that have it (AVX-512 BF16, AMX) unless told otherwise,
which breaks fp32 parity (1e-1 instead of 1e-5 on MobileNetV2). The hint is f32 unless
``EDGECNN_OPENVINO_PRECISION`` (f32, bf16, f16) asks for another; ``EDGECNN_OPENVINO_DEVICE`` picks the
OpenVINO device (default CPU). Only onnxruntime is imported here.

Two backends, one provider: the plugin offers Intel devices only (its device filter skips any other vendor; an
AMD CPU gets no OpenVINO device), so where it offers none, ``--ep openvino`` runs on OpenVINO's own runtime
(``openvino.Core``, runtime/openvino/runner.py), which runs on any x86-64 CPU. ``backend()`` picks: the
plugin when it offers the device, else the runtime; ``EDGECNN_OPENVINO_BACKEND=plugin|runtime`` forces one.
Both get the same config (precision hint, threads), and results say which ran (``backend``).
"""

from __future__ import annotations

import json
import os

import onnxruntime as ort

from ...core.errors import InputError, ProviderUnavailableError

ORT_NAME = "OpenVINOExecutionProvider"
INSTALL = (
    "pip install 'edgecnn[openvino]' (the onnxruntime-ep-openvino plugin, loaded beside the onnxruntime "
    "edgecnn uses, and OpenVINO's runtime for CPUs the plugin does not serve; do not swap onnxruntime for "
    "onnxruntime-openvino)"
)
BACKENDS = ("auto", "plugin", "runtime")
PLUGIN, RUNTIME = "onnxruntime plugin", "openvino runtime"
PRECISIONS = ("f32", "bf16", "f16")
_REGISTRATION = "edgecnn_openvino"
_state: dict = {}  # "ok": bool once registration was tried; "why": the reason it failed


def register() -> bool:
    """Load the plugin into onnxruntime once per process; ``False`` when it is not installed or will not load."""
    if "ok" in _state:
        return _state["ok"]
    try:
        import onnxruntime_ep_openvino as plugin

        ort.register_execution_provider_library(_REGISTRATION, plugin.get_library_path())
        _state["ok"] = True
    except ImportError:
        _state.update(ok=False, why="onnxruntime-ep-openvino is not installed")
    except Exception as exc:  # a broken wheel, or an onnxruntime too old for plugin providers
        reason = " ".join(str(exc).split())
        _state.update(ok="already registered" in reason, why=reason)
    return _state["ok"]


def unavailable_message() -> str:
    """The one line for ``--ep openvino`` when neither backend can run: why each cannot, and what to do."""
    reasons = _reasons()
    if any("not installed" in r for r in reasons):
        todo = INSTALL
    elif backend_choice() == "plugin":
        todo = "EDGECNN_OPENVINO_BACKEND=plugin allows the plugin alone: unset it to run on OpenVINO's own runtime"
    else:
        todo = f"set EDGECNN_OPENVINO_DEVICE to a device OpenVINO lists here (it is {device()})"
    return f"execution provider 'openvino' cannot run here: {'; '.join(reasons) or 'the plugin was not loaded'}; {todo}"


def backend_choice() -> str:
    """``EDGECNN_OPENVINO_BACKEND``: ``auto`` (default), ``plugin`` or ``runtime``."""
    choice = (os.environ.get("EDGECNN_OPENVINO_BACKEND") or "auto").strip().lower()
    if choice not in BACKENDS:
        raise InputError(f"EDGECNN_OPENVINO_BACKEND={choice!r} is not one of {', '.join(BACKENDS)}")
    return choice


def backend() -> str | None:
    """The backend ``--ep openvino`` runs on here (``PLUGIN`` or ``RUNTIME``), or ``None`` when neither can."""
    choice = backend_choice()
    if choice in ("auto", "plugin") and plugin_offers_device():
        return PLUGIN
    if choice in ("auto", "runtime") and runtime_offers_device():
        return RUNTIME
    return None


def plugin_offers_device() -> bool:
    """The plugin is installed, loads, and lists the asked OpenVINO device on this machine."""
    return register() and bool(_devices(ORT_NAME))


def runtime_offers_device() -> bool:
    """OpenVINO's own runtime is installed and lists the asked device."""
    return _runtime_status()[0]


def _runtime_status() -> tuple[bool, str]:
    """(whether OpenVINO's runtime offers the asked device, why not), checked once per process and device."""
    key = ("runtime", device())
    if key not in _state:
        try:
            import openvino as ov

            found = ov.Core().available_devices
            _state[key] = (
                device() in found,
                f"OpenVINO's runtime lists {', '.join(found) or 'no device'}, not {device()}",
            )
        except ImportError:
            _state[key] = (False, "OpenVINO's runtime (the openvino package) is not installed")
        except Exception as exc:  # a broken install: say what OpenVINO said
            _state[key] = (False, "OpenVINO's runtime did not start: " + " ".join(str(exc).split()))
    return _state[key]


def _reasons() -> list[str]:
    out = []
    choice = backend_choice()
    if choice in ("auto", "plugin"):
        if not register():
            out.append(_state.get("why", "the plugin was not loaded"))
        elif not _devices(ORT_NAME):
            vendors = sorted({d.device.vendor for d in ort.get_ep_devices() if d.device.vendor})
            out.append(
                f"the plugin offers no OpenVINO {device()} device here (it serves Intel devices only; "
                f"this machine's: {', '.join(vendors) or 'unknown vendor'})"
            )
    if choice in ("auto", "runtime"):
        ok, why = _runtime_status()
        if not ok:
            out.append(why)
    return out


def precision_hint() -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for float layers: ``f32`` unless the environment asks."""
    hint = (os.environ.get("EDGECNN_OPENVINO_PRECISION") or "f32").strip().lower()
    if hint not in PRECISIONS:
        raise InputError(f"EDGECNN_OPENVINO_PRECISION={hint!r} is not one of {', '.join(PRECISIONS)}")
    return hint


def device() -> str:
    """The OpenVINO device (``CPU``, ``GPU``, ``NPU``): ``EDGECNN_OPENVINO_DEVICE``, default ``CPU``."""
    return (os.environ.get("EDGECNN_OPENVINO_DEVICE") or "CPU").strip().upper()


def config(threads: int | None) -> dict:
    """OpenVINO's own config for the device, for either backend: the precision hint, and the thread count so that
    ``--threads`` means the same as on the CPU provider (the plugin ignores onnxruntime's intra-op setting)."""
    out = {"INFERENCE_PRECISION_HINT": precision_hint()}
    if threads:
        out["INFERENCE_NUM_THREADS"] = str(int(threads))
    return out


def options(threads: int | None) -> dict:
    """The plugin's provider options: ``config`` for the device, as its ``load_config``."""
    return {"load_config": json.dumps({device(): config(threads)})}


def precision_of(opts: dict) -> str | None:
    """The precision hint inside options made by ``options`` (for reports)."""
    try:
        return next(iter(json.loads(opts["load_config"]).values()))["INFERENCE_PRECISION_HINT"]
    except (KeyError, ValueError, StopIteration, TypeError, AttributeError):
        return None


def _devices(ort_name: str) -> list:
    found = [d for d in ort.get_ep_devices() if d.ep_name == ort_name]
    if ort_name != ORT_NAME:
        return found[:1]
    # One entry per OpenVINO device, plus meta devices (AUTO …) under another EP name: take the asked one.
    return [d for d in found if d.ep_metadata.get("ov_device") == device()]


def add_providers(so: ort.SessionOptions, resolved) -> None:
    """Put ``resolved`` (``[(ort_name, options), …]``, priority order) on ``so`` the plugin way, by device.

    Raises:
        ProviderUnavailableError: onnxruntime offers no device for one of them (an OpenVINO device this machine
            lacks, or a provider that is not a plugin-style one, such as CUDA, next to OpenVINO).
    """
    for ort_name, opts in resolved:
        devices = _devices(ort_name)
        if not devices:
            what = f"OpenVINO device {device()}" if ort_name == ORT_NAME else ort_name
            raise ProviderUnavailableError(
                f"onnxruntime lists no {what} to run beside OpenVINO on this machine; use --ep openvino (with "
                f"EDGECNN_OPENVINO_DEVICE=CPU, GPU or NPU) or --ep openvino+cpu"
            )
        so.add_provider_for_devices(devices, {k: str(v) for k, v in opts.items()})
