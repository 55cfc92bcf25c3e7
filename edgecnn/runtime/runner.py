"""One runner for every runtime: open a model file with options, describe its inputs and outputs, run a batch,
say what really ran and where.

``open_runner(path, RunnerOptions(...))`` (or keywords) is the one factory: every place that runs a model
(``Predictor``, bench, selftest, eval, validate, bundles, the Ray actors, the export's own checks) opens it here.
Each runtime lives in its own folder behind the same ``Runner`` interface, as Polygraphy keeps
``backend/onnxrt`` and ``backend/trt``:

- ``runtime/onnxrt/``: onnxruntime with any of its execution providers (``runtime/providers.py`` names them);
- ``runtime/openvino/``: OpenVINO's own runtime, where ``--ep openvino`` runs there (the onnxruntime plugin
  offers no device on this CPU; ``runtime/openvino/config.py`` decides);
- ``runtime/litert/``: LiteRT's interpreter for ``.tflite`` files (torch-free: ``pip install "edgecnn[litert]"``);
- ``runtime/executorch/``: ExecuTorch's Python runtime for ``.pte`` files. It imports torch when it opens a file
  (ExecuTorch's Python bindings need it), so a ``.pte`` does not run on the torch-free device install.
- ``runtime/coreml/``: Core ML for ``.mlpackage`` folders, through coremltools on macOS; elsewhere the opener says
  in one line that the file was converted and checked structurally, not run (``runtime/coreml/mlpackage.py``
  reads it without coremltools).

A ``.tflite`` or ``.pte`` opens on its own runtime whatever the providers say (``SUFFIX_RUNTIMES``); an ONNX file's
runtime follows its providers. ``register_runtime(name, opener)`` is the slot for runners registered from their own
side (the eager model of ``bench --torch``, from ``edgecnn/convert/torch_runner.py``), so this module never imports
torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError

ModelSource = str | os.PathLike | bytes


@dataclass(frozen=True)
class IOSpec:
    """One input or output of a model.

    Attributes:
        name: the tensor's name.
        shape: its dimensions: an int where fixed, a str (the symbolic name) or ``None`` where free.
        dtype: its numpy dtype (``None`` for a type numpy has no match for).
        type: the ONNX type string (``"tensor(float)"``), as onnxruntime spells it.
    """

    name: str
    shape: tuple
    dtype: np.dtype | None
    type: str = ""


@dataclass(frozen=True)
class RunnerOptions:
    """How to open a model.

    Attributes:
        providers: short names or a priority list (``"cpu"``, ``"openvino"``, ``("cuda", "cpu")``, ORT names
            too), with ``providers.resolve``'s rules: no silent fallback, a provider this build lacks is one line.
        threads: intra-op threads (``None``: the runtime's default).
        graph_opt: onnxruntime's graph optimization level: ``disable``, ``basic``, ``extended`` or ``all``.
        precision: the model's precision, for TensorRT's flags (read from the card when ``None``).
        profile: turn onnxruntime's profiler on (``runner.session.end_profiling()`` writes it).
        profile_prefix: where the profile file goes (onnxruntime's ``profile_file_prefix``).
        cache_dir: TensorRT's engine cache folder.
        optimized_model_path: onnxruntime writes the graph it optimized there.
        runtime: a registered runtime by name (``"onnxruntime"``, ``"openvino"``, ``"torch"`` …); ``None``
            picks from the providers.
        extra: options only a registered runtime reads (the torch runner's ``batch``, say).
    """

    providers: str | Sequence = ("cpu",)
    threads: int | None = None
    graph_opt: str = "all"
    precision: str | None = None
    profile: bool = False
    profile_prefix: str | None = None
    cache_dir: str | os.PathLike | None = None
    optimized_model_path: str | os.PathLike | None = None
    runtime: str | None = None
    extra: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise InputError(f"threads must be at least 1, got {self.threads}")


class Runner:
    """A model opened on one runtime. Subclasses set ``inputs``, ``outputs``, ``metadata`` and implement
    ``run`` and ``info``.

    Attributes:
        runtime: the runtime's registered name.
        inputs: the model's inputs, as ``IOSpec``.
        outputs: its outputs.
        metadata: the file's metadata_props (the edgecnn card lives there).
    """

    runtime: str = ""
    inputs: tuple[IOSpec, ...] = ()
    outputs: tuple[IOSpec, ...] = ()
    metadata: dict[str, str] = {}

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run once: ``feeds`` by input name; the outputs named (all, in order, when ``None``)."""
        raise NotImplementedError

    def info(self) -> dict:
        """What really ran, and where: ``{"runtime", "providers", "device", "threads", "backend", ...}``."""
        raise NotImplementedError

    def node_assignment(self) -> dict[str, int] | None:
        """How many nodes each provider took, where the runtime can say; ``None`` otherwise."""
        return None

    def bind(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """A closure that runs ``feeds`` once: what a benchmark times. A runtime may prepare the inputs here,
        once, so that the timed call is the model alone (the torch runner makes its tensor)."""
        return lambda: self.run(feeds)

    def close(self) -> None:
        """Give back what opening took beyond memory (the torch runner restores torch's thread count)."""

    @property
    def providers(self) -> list[str]:
        """The providers really used (``info()["providers"]``)."""
        return list(self.info().get("providers") or [])


Opener = Callable[[ModelSource, RunnerOptions], Runner]
_RUNTIMES: dict[str, Opener] = {}


def register_runtime(name: str, opener: Opener) -> None:
    """Make a runtime openable by name: ``open_runner(path, runtime=name)`` calls ``opener(path, options)``.

    Registering the same name again replaces it (a re-import is harmless).
    """
    _RUNTIMES[name] = opener


def runtimes() -> list[str]:
    """The names ``open_runner`` knows (the built-in ones and those registered so far)."""
    return sorted({"onnxruntime", "openvino", "litert", "executorch", "coreml", *_RUNTIMES})


#: Files whose suffix names their runtime; any other file is ONNX (``.onnx``, ``.ort``).
SUFFIX_RUNTIMES = {".tflite": "litert", ".pte": "executorch", ".mlpackage": "coreml"}


def runtime_of(source: ModelSource) -> str | None:
    """The runtime a file's suffix names (``"litert"`` for ``.tflite``, ``"executorch"`` for ``.pte``) or ``None``."""
    if isinstance(source, bytes):
        return None
    return SUFFIX_RUNTIMES.get(Path(source).suffix.lower())


def _builtin(name: str) -> Opener | None:
    # imported on first use: a process that never asks for OpenVINO (or LiteRT …) does not load it
    if name == "onnxruntime":
        from .onnxrt import open_onnxrt

        return open_onnxrt
    if name == "openvino":
        from .openvino import open_openvino

        return open_openvino
    if name == "litert":
        from .litert import open_litert

        return open_litert
    if name == "executorch":
        from .executorch import open_executorch

        return open_executorch
    if name == "coreml":
        from .coreml import open_coreml

        return open_coreml
    return None


def pick_runtime(options: RunnerOptions, source: ModelSource | None = None) -> str:
    """The runtime ``options`` open ``source`` on: the one named, else the one its suffix names (``.tflite``,
    ``.pte``), else OpenVINO's own runtime where ``--ep openvino`` runs there (``runtime/openvino/config.py``'s
    ``backend``), else onnxruntime."""
    if options.runtime:
        return options.runtime
    if source is not None and runtime_of(source):
        return runtime_of(source)
    from . import openvino as ov
    from .providers import _split, get_provider

    if any(get_provider(n).ort_name == ov.ORT_NAME for n in _split(options.providers)):
        from .providers import resolve

        resolve(options.providers, threads=options.threads)  # refuses with one line when neither backend can run
        if ov.backend() == ov.RUNTIME:
            return "openvino"
    return "onnxruntime"


def open_runner(source: ModelSource, options: RunnerOptions | None = None, **keywords) -> Runner:
    """Open a model on the runtime its options ask for.

    Args:
        source: the model file (``.onnx``/``.ort``, ``.tflite``, ``.pte``, an ``.mlpackage`` folder), or an ONNX
            model's bytes (onnxruntime only).
        options: a ``RunnerOptions``; ``keywords`` (its field names) are applied on top, so
            ``open_runner(path, providers="cpu", threads=2)`` works as well.

    Raises:
        InputError: an unknown option or runtime.
        ArtifactError: the file is missing or the runtime cannot load it.
        ProviderUnavailableError: a provider this build lacks, or one the runtime dropped when it started.
    """
    known = {f.name for f in fields(RunnerOptions)}
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise InputError(f"open_runner: unknown option {unknown[0]!r}; options: {', '.join(sorted(known))}")
    opts = replace(options or RunnerOptions(), **keywords) if keywords else (options or RunnerOptions())
    name = pick_runtime(opts, source)
    opener = _RUNTIMES.get(name) or _builtin(name)
    if opener is None:
        raise InputError(f"no runtime {name!r} is registered; known: {', '.join(runtimes())}")
    if isinstance(source, os.PathLike):
        source = Path(source)
    return opener(source, opts)
