"""Checkpoint loading: local files and published checkpoints, always as data (``weights_only=True``).

Accepted files: a plain state_dict (torchvision's and Pytorch-UNet's format), or a dict wrapping one
under ``"state_dict"`` or ``"model"`` (training-loop checkpoints). Keys saved from ``nn.DataParallel``
(``module.`` prefix) are accepted. Non-tensor entries (Pytorch-UNet's ``mask_values``) are ignored.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .registry import Checkpoint, ModelSpec

_SHOW = 5  # how many offending keys an error names


@dataclass(frozen=True)
class LoadReport:
    """What happened when a checkpoint was loaded."""

    path: str
    sha256: str
    dropped: tuple = ()  # keys present in the file and deliberately not loaded (e.g. GoogLeNet aux heads)
    notes: tuple = field(default_factory=tuple)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file without executing any code it may carry."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; pass the path of a .pth/.pt file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint '{path}' holds more than tensors and was refused unread ({first[:160]}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint '{path}' cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'truncated'}); "
            "the file may be truncated or not a PyTorch checkpoint; download or save it again"
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(obj).__name__}, not a state_dict; "
                              "save it with torch.save(model.state_dict(), path)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint '{path}' holds no tensors; is it a state_dict?")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


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
    hint = f"check that the checkpoint is a {spec.name} (see 'edgecnn info {spec.name}')"
    only_head = misshaped and not missing and not unexpected
    if only_head:
        # The classifier's output size is the first dimension of the last weight whose shape differs.
        ckpt_classes = state[misshaped[-1]].shape[0]
        hint = f"the checkpoint has {ckpt_classes} classes: pass num_classes={ckpt_classes} (--num-classes {ckpt_classes})"
    elif spec.family == "googlenet" and any(k.startswith("aux") for k in missing):
        hint = "the checkpoint has no auxiliary heads: create the model with aux_logits=False"
    elif spec.family == "unet" and any(k.endswith("up.weight") for k in missing + unexpected):
        hint = "the checkpoint is of the other upsampling variant: try unet vs unet_bilinear"
    return f"checkpoint '{source}' does not fit {spec.name}: " + "; ".join(parts) + f"; {hint}"


def hub_cache_path(ckpt: Checkpoint) -> Path:
    """Where torch.hub keeps (or would keep) a published checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ckpt.filename


def fetch_published(ckpt: Checkpoint, spec: ModelSpec) -> Path:
    """The local path of a published checkpoint: from torch.hub's cache, downloading it if needed.

    The file's SHA-256 must start with the prefix in its name (torchvision's convention); a file that
    does not is refused, cached or not.
    """
    path = hub_cache_path(ckpt)
    if not path.is_file():
        try:
            torch.hub.download_url_to_file(ckpt.url, str(path) + ".part", progress=True)
            os.replace(str(path) + ".part", path)
        except Exception as exc:  # no network, DNS failure, HTTP error: all end the same way for the user
            Path(str(path) + ".part").unlink(missing_ok=True)
            raise CheckpointError(
                f"cannot download {spec.name}'s '{ckpt.name}' checkpoint ({type(exc).__name__}); "
                f"without network, put {ckpt.url} at {path}"
            ) from None
    digest = sha256_file(path)
    if not digest.startswith(ckpt.sha256_prefix):
        raise CheckpointError(
            f"{path} has SHA-256 {digest[:12]}…, expected {ckpt.sha256_prefix}…; the file is corrupt or another "
            f"checkpoint: delete it and fetch {ckpt.url} again"
        )
    return path
