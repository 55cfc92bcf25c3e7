"""Every architecture in the zoo: builds, gives one tensor of the right shape, matches its reference.

The ``built`` fixture is module-scoped and parametrized over ``list_models()``, so pytest groups the tests
by model: each architecture is built once and only one is alive at a time (VGG weighs ~550 MB).
Full-size GFLOPs of the big models (VGG, ResNet-101/152, U-Net at 256×256) run only with ``pytest -m slow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from edgecnn.models import create_model, get_spec, list_models
from edgecnn.models.flops import count_macs, gflops

REFERENCE_DIR = Path(__file__).parent / "reference"

MODELS = list_models()
BIG = {n for n in MODELS if get_spec(n).gflops > 5.0}  # full-size forward of these is left to `-m slow`


@dataclass
class Built:
    name: str
    spec: object
    model: nn.Module


@pytest.fixture(scope="module", params=MODELS)
def built(request) -> Built:
    torch.manual_seed(0)
    return Built(request.param, get_spec(request.param), create_model(request.param))


def small_input(spec, n: int = 2) -> torch.Tensor:
    """A small N×C×H×W input the architecture accepts, with H ≠ W so that a swapped axis shows."""
    m = spec.size_multiple
    h, w = (max(64, lo) for lo in spec.min_input_size)
    h, w = -(-h // m) * m, -(-(w + 16) // m) * m  # round up to the size multiple
    channels = spec.arch_options.get("in_channels", 3)
    return torch.randn(n, channels, h, w)


def expected_shape(spec, x: torch.Tensor) -> tuple:
    if spec.task == "segmentation":
        return (x.shape[0], spec.num_classes, *x.shape[-2:])
    return (x.shape[0], spec.num_classes)


def shapes(model: nn.Module) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- specs (nothing built)


def test_zoo_has_every_family():
    assert {get_spec(n).family for n in MODELS} == {
        "alexnet",
        "vgg",
        "googlenet",
        "mobilenet",
        "resnet",
        "unet",
        "efficientnet",
    }
    assert len(MODELS) == len(set(MODELS)) == 26


@pytest.mark.parametrize("name", MODELS)
def test_spec_is_consistent(name):
    spec = get_spec(name)
    assert spec.name == name == name.lower()
    assert spec.task in ("classification", "segmentation")
    assert all(lo <= s and s % spec.size_multiple == 0 for s, lo in zip(spec.input_size, spec.min_input_size))
    assert len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
    assert spec.num_params > 0 and spec.gflops > 0 and spec.paper
    if spec.checkpoints:  # a published checkpoint can only load strictly if the layout is pinned by a reference
        assert spec.reference is not None
    if spec.reference:
        assert (REFERENCE_DIR / f"{spec.reference}.json").is_file()


def test_every_reference_file_is_used():
    used = {get_spec(n).reference for n in MODELS}
    assert {p.stem for p in REFERENCE_DIR.glob("*.json")} <= used


# --------------------------------------------------------------------------- built models


def test_created_in_eval_mode(built):
    assert not any(m.training for m in built.model.modules())


def test_forward_gives_one_tensor_of_the_right_shape(built):
    x = small_input(built.spec)
    with torch.no_grad():
        out = built.model(x)
        again = built.model(x)
    assert type(out) is torch.Tensor, f"{built.name} returned {type(out).__name__} in eval"
    assert tuple(out.shape) == expected_shape(built.spec, x)
    assert torch.isfinite(out).all()
    assert torch.equal(out, again)  # eval mode: no dropout, no batch statistics


def test_forward_at_min_input_size(built):
    spec = built.spec
    x = torch.randn(1, spec.arch_options.get("in_channels", 3), *spec.min_input_size)
    with torch.no_grad():
        out = built.model(x)
    assert tuple(out.shape) == expected_shape(spec, x)


def test_param_count_equals_spec(built):
    assert n_params(built.model) == built.spec.num_params


def test_state_dict_matches_reference(built, reference):
    spec = built.spec
    if spec.reference is None:
        pytest.skip(f"{spec.name} has no published reference layout")
    ref = reference(spec.reference)
    model = create_model(spec.name, **spec.reference_options) if spec.reference_options else built.model
    ours = shapes(model)
    missing = [k for k in ref["state_dict"] if k not in ours]
    unexpected = [k for k in ours if k not in ref["state_dict"]]
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    misshaped = {k: (ours[k], s) for k, s in ref["state_dict"].items() if ours[k] != s}
    assert not misshaped
    assert n_params(model) == ref["num_params"]


def test_only_unet_may_have_dynamic_hw(built):
    # AdaptiveAvgPool2d to more than 1×1 runs at the wrong size in onnxruntime with dynamic H/W (DESIGN.md).
    multi_cell_pool = any(
        isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1)) for m in built.model.modules()
    )
    if built.spec.dynamic_hw:
        assert not multi_cell_pool
    assert built.spec.dynamic_hw == (built.spec.task == "segmentation")


@pytest.mark.parametrize(
    "built", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in MODELS], indirect=True
)
def test_gflops_match_spec(built):
    spec = built.spec
    in_ch = spec.arch_options.get("in_channels", 3)
    assert round(gflops(built.model, spec.input_size, in_ch), 3) == spec.gflops


# --------------------------------------------------------------------------- the MAC counter itself


def test_count_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8×8×8 outputs × 3·3·3 = 13824
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # 512 outputs × 1·3·3 = 4608
        nn.ConvTranspose2d(8, 4, 2, stride=2),  # 512 inputs × 4·2·2 = 8192
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 10),  # 10 × 1024 = 10240
    )
    assert count_macs(model, (8, 8)) == 13824 + 4608 + 8192 + 10240
    assert not any(m._forward_hooks for m in model.modules())  # hooks are removed again
