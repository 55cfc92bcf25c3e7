"""Checkpoint loading: files built here from the reference layouts, bad files, and published checkpoints offline.

No real checkpoint can be downloaded on these machines, so every file is made by the test: random tensors of
the shapes in tests/reference/NAME.json are exactly what a torchvision / Pytorch-UNet state_dict looks like.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import hashlib
import math
import os
import pickle
import shlex

import pytest
import torch

from edgecnn.core.errors import CheckpointError, EdgeCNNError
from edgecnn.models import create_model, create_model_with_report, get_spec, registry
from edgecnn.models.weights import fetch_published, hub_cache_path, read_state_dict


def random_state(shapes: dict, seed: int = 0) -> dict:
    """Random tensors of the given shapes, scaled so that a forward pass stays finite and input-dependent."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2:  # conv / linear weights: unit-variance outputs
            state[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1 + (1.0 if key.endswith(".weight") else 0.0)
    return state


def reference_state(reference, name: str, seed: int = 0, **overrides) -> dict:
    """A random state_dict in the layout of ``name``'s reference file; ``overrides`` replace shapes by key.

    Cached: tests share the tensors, so they must not change them in place.
    """
    return dict(_reference_state(reference, name, seed, tuple((k, tuple(v)) for k, v in overrides.items())))


@functools.lru_cache(maxsize=8)
def _reference_state(reference, name, seed, overrides) -> dict:
    shapes = {**reference(get_spec(name).reference)["state_dict"], **{k: list(v) for k, v in overrides}}
    return random_state(shapes, seed)


def save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def outputs(model, x):
    with torch.no_grad():
        return model(x)


def assert_same_weights(model, state):
    ours = model.state_dict()
    assert ours.keys() == state.keys()
    assert all(torch.equal(ours[k], state[k]) for k in state)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("mobilenet_v2", 64), ("unet_bilinear", 32)])
def test_round_trip_gives_identical_outputs(tmp_path, reference, name, size):
    state = reference_state(reference, name)
    path = save(state, tmp_path / f"{name}.pth")
    loaded = create_model(name, weights=path)
    direct = create_model(name)
    direct.load_state_dict(state)
    x = torch.randn(2, 3, size, size)
    out = outputs(loaded, x)
    assert not loaded.training
    assert torch.isfinite(out).all() and not torch.allclose(out[0], out[1])  # the weights really matter
    assert torch.equal(out, outputs(direct, x))
    assert_same_weights(loaded, state)


def test_weights_may_be_a_pathlib_path(tmp_path, reference):
    state = reference_state(reference, "mobilenet_v3_small")
    save(state, tmp_path / "ckpt.bin")
    assert_same_weights(create_model("mobilenet_v3_small", weights=tmp_path / "ckpt.bin"), state)


def test_report_names_the_file(tmp_path, reference):
    path = save(reference_state(reference, "mobilenet_v3_small"), tmp_path / "m.pth")
    model, report = create_model_with_report("mobilenet_v3_small", weights=path)
    assert report.path == path and report.dropped == ()
    assert report.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert create_model_with_report("mobilenet_v3_small")[1] is None


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"state_dict": s, "epoch": 12, "best_acc1": 0.7},
        lambda s: {"model": s, "optimizer": {"lr": 0.1}, "args": ["--lr", "0.1"]},
        lambda s: {"model_state_dict": s, "step": 3},
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
    ids=["state_dict", "model", "model_state_dict", "DataParallel", "wrapped-DataParallel"],
)
def test_wrapped_checkpoints(tmp_path, reference, wrap):
    state = reference_state(reference, "mobilenet_v3_small")
    path = save(wrap(state), tmp_path / "wrapped.pth")
    assert_same_weights(create_model("mobilenet_v3_small", weights=path), state)


def test_pytorch_unet_mask_values_are_ignored(tmp_path, reference):
    state = reference_state(reference, "unet_bilinear")
    path = save({**state, "mask_values": [0, 1]}, tmp_path / "unet.pth")  # what Pytorch-UNet's train.py saves
    assert_same_weights(create_model("unet_bilinear", weights=path), state)


def test_checkpoint_without_batchnorm_counters_loads(tmp_path, reference):
    # files saved before PyTorch 0.4.1 have no num_batches_tracked; torch's own load_state_dict accepts them
    state = reference_state(reference, "resnet18")
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(state)
    loaded = create_model("resnet18", weights=save(old, tmp_path / "old.pth"))
    direct = create_model("resnet18")
    direct.load_state_dict(old)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(outputs(loaded, x), outputs(direct, x))


def test_num_classes_checkpoint(tmp_path, reference):
    state = reference_state(reference, "resnet18", **{"fc.weight": [10, 512], "fc.bias": [10]})
    model = create_model("resnet18", num_classes=10, weights=save(state, tmp_path / "r10.pth"))
    assert outputs(model, torch.randn(1, 3, 64, 64)).shape == (1, 10)


# --------------------------------------------------------------------------- GoogLeNet auxiliary heads


def test_googlenet_aux_heads_are_dropped_and_said(tmp_path, reference):
    state = reference_state(reference, "googlenet")  # torchvision's layout: with aux1/aux2
    aux = {k for k in state if k.startswith(("aux1.", "aux2."))}
    assert aux
    model, report = create_model_with_report("googlenet", weights=save(state, tmp_path / "g.pth"))
    assert set(report.dropped) == aux
    assert any("auxiliary" in note and str(len(aux)) in note for note in report.notes)
    assert model.aux1 is None and model.aux2 is None
    direct = create_model("googlenet")
    direct.load_state_dict({k: v for k, v in state.items() if k not in aux})
    x = torch.randn(2, 3, 64, 64)
    out = outputs(model, x)
    assert type(out) is torch.Tensor and torch.equal(out, outputs(direct, x))


def test_googlenet_aux_heads_load_into_a_model_with_them(tmp_path, reference):
    state = reference_state(reference, "googlenet")
    model, report = create_model_with_report("googlenet", aux_logits=True, weights=save(state, tmp_path / "g.pth"))
    assert report.dropped == () and report.notes == ()
    assert_same_weights(model, state)


def test_googlenet_checkpoint_without_aux_heads_into_model_with_them(tmp_path, reference):
    state = {k: v for k, v in reference_state(reference, "googlenet").items() if not k.startswith("aux")}
    with pytest.raises(CheckpointError, match="aux_logits=False"):
        create_model("googlenet", aux_logits=True, weights=save(state, tmp_path / "g.pth"))


# --------------------------------------------------------------------------- checkpoints that do not fit


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_wrong_architecture_names_the_first_keys(tmp_path, reference):
    path = save(reference_state(reference, "resnet18"), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("mobilenet_v2", weights=path)
    message = one_line(err)
    assert f"checkpoint '{path}' does not fit mobilenet_v2" in message
    n_missing = sum(1 for k in reference("mobilenet_v2")["state_dict"] if not k.endswith("num_batches_tracked"))
    assert f"{n_missing} missing (features.0.0.weight, features.0.1.weight," in message
    assert f"{len(reference('resnet18')['state_dict'])} unexpected (conv1.weight, bn1.weight," in message
    assert message.count("features.") == 5  # the first few keys only, not hundreds
    assert "check that the checkpoint is a mobilenet_v2" in message
    assert "num_classes" not in message


def test_wrong_variant(tmp_path, reference):
    path = save(reference_state(reference, "resnet34"), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match=r"unexpected \(layer1\.2\.conv1\.weight.*is a resnet18") as err:
        create_model("resnet18", weights=path)
    one_line(err)


def test_wrong_width_is_not_mistaken_for_a_class_count(tmp_path):
    half = create_model("mobilenet_v2", width_mult=0.5)
    path = save(half.state_dict(), tmp_path / "half.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("mobilenet_v2", weights=path)
    message = one_line(err)
    assert "of the wrong shape (features.0.0.weight [16, 3, 3, 3] vs [32, 3, 3, 3]" in message
    assert "num_classes" not in message and "width_mult" in message


@pytest.mark.parametrize(
    "name, head",
    [
        ("mobilenet_v2", {"classifier.1.weight": [10, 1280], "classifier.1.bias": [10]}),
        ("resnet18", {"fc.weight": [10, 512], "fc.bias": [10]}),
        (
            "googlenet",
            {
                "fc.weight": [10, 1024],
                "fc.bias": [10],
                "aux1.fc2.weight": [10, 1024],
                "aux1.fc2.bias": [10],
                "aux2.fc2.weight": [10, 1024],
                "aux2.fc2.bias": [10],
            },
        ),
        ("unet_bilinear", {"outc.conv.weight": [10, 64, 1, 1], "outc.conv.bias": [10]}),
    ],
)
def test_wrong_class_count_suggests_num_classes(tmp_path, reference, name, head):
    path = save(reference_state(reference, name, **head), tmp_path / "ten.pth")
    with pytest.raises(CheckpointError) as err:
        create_model(name, weights=path)
    message = one_line(err)
    assert "of the wrong shape" in message and "pass num_classes=10" in message
    create_model(name, num_classes=10, weights=path)  # and the advice works


def test_wrong_input_channels_suggest_in_channels(tmp_path, reference):
    state = reference_state(reference, "unet_bilinear", **{"inc.double_conv.0.weight": [64, 1, 3, 3]})
    path = save(state, tmp_path / "grey.pth")
    with pytest.raises(CheckpointError, match="pass in_channels=1"):
        create_model("unet_bilinear", weights=path)
    model = create_model("unet_bilinear", in_channels=1, weights=path)
    assert outputs(model, torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_other_unet_variant(tmp_path, reference):
    path = save(reference_state(reference, "unet"), tmp_path / "unet.pth")
    with pytest.raises(CheckpointError, match="try unet vs unet_bilinear"):
        create_model("unet_bilinear", weights=path)


# --------------------------------------------------------------------------- files that are not checkpoints


def _truncated(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save(create_model("mobilenet_v3_small").state_dict(), whole)
    data = whole.read_bytes()
    (tmp_path / "bad.pth").write_bytes(data[: len(data) // 2])


def _text(tmp_path):
    (tmp_path / "bad.pth").write_text("these are not the weights you are looking for\n")


def _png(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))


def _random(tmp_path):
    (tmp_path / "bad.pth").write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1), dtype=torch.uint8).numpy().tobytes()
    )


def _empty(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"")


@pytest.mark.parametrize(
    "make", [_truncated, _text, _png, _random, _empty], ids=["truncated", "text", "png", "random-bytes", "empty"]
)
def test_unreadable_files(tmp_path, make):
    make(tmp_path)
    path = str(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("mobilenet_v3_small", weights=path)
    message = one_line(err)
    assert message.startswith(f"checkpoint '{path}' is not a PyTorch checkpoint, or is truncated or damaged")
    assert message.endswith("save or download it again")


@pytest.mark.parametrize(
    "content, says",
    [
        (torch.zeros(3), "holds a Tensor, not a state_dict"),
        ([torch.zeros(3)], "holds a list, not a state_dict"),
        ({"epoch": 3, "note": "no weights"}, "holds no tensors"),
    ],
)
def test_files_without_a_state_dict(tmp_path, content, says):
    path = save(content, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=says):
        read_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model("resnet18", weights=str(tmp_path / "nowhere.pth"))


# --------------------------------------------------------------------------- code payloads


class RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


class RunsPython:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def _in_state_dict(payload, path):  # the realistic attack: a plausible state_dict with one poisoned entry
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "extra": payload}, path)


def _alone(payload, path):
    torch.save(payload, path)


def _raw_pickle(payload, path):  # not torch's zip format: torch.load's legacy path
    with open(path, "wb") as fh:
        pickle.dump(payload, fh, protocol=2)


PAYLOADS = [
    pytest.param(cls, how, id=f"{cls.__name__}-{how.__name__.strip('_')}")
    for cls in (RunsShell, RunsPython)
    for how in (_in_state_dict, _alone, _raw_pickle)
]


@pytest.mark.parametrize("payload, write", PAYLOADS)
def test_code_payload_is_refused_unrun(tmp_path, payload, write):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write(payload(marker), path)
    with pytest.raises(CheckpointError) as err:
        create_model("resnet18", weights=str(path))
    assert not marker.exists(), "the checkpoint's code ran"
    message = one_line(err)
    assert message.startswith(f"checkpoint '{path}' refers to ")
    assert ("system" if payload is RunsShell else "exec") in message and "refused unread" in message


@pytest.mark.parametrize("payload, write", PAYLOADS)
def test_code_payload_is_live(tmp_path, payload, write):
    """Control: the same file loaded the unsafe way does run its code, so the test above can fail."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write(payload(marker), path)
    if write is _raw_pickle:
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


# --------------------------------------------------------------------------- published checkpoints, offline


def publish(monkeypatch, name: str, state: dict, tmp_path) -> tuple:
    """Make ``state`` the file of ``name``'s default published checkpoint: same file naming, a real hash."""
    data_path = tmp_path / "published.pth"
    torch.save(state, data_path)
    digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
    spec = get_spec(name)
    real = spec.checkpoints[0]
    fake = dataclasses.replace(real, url=real.url.rsplit("-", 1)[0] + f"-{digest[:8]}.pth", sha256_prefix=digest[:8])
    monkeypatch.setitem(
        registry._REGISTRY, spec.name, dataclasses.replace(spec, checkpoints=(fake, *spec.checkpoints[1:]))
    )
    return fake, data_path, digest


def test_published_checkpoint_from_the_cache(offline_hub, monkeypatch, tmp_path, reference):
    state = reference_state(reference, "mobilenet_v3_small")
    ckpt, data_path, digest = publish(monkeypatch, "mobilenet_v3_small", state, tmp_path)
    cached = offline_hub / "checkpoints" / ckpt.filename
    assert hub_cache_path(ckpt) == cached
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data_path.read_bytes())
    assert fetch_published(ckpt, get_spec("mobilenet_v3_small")) == cached
    for weights in ("imagenet", "imagenet1k_v1"):
        model, report = create_model_with_report("mobilenet_v3_small", weights=weights)
        assert_same_weights(model, state)
        assert report.path == str(cached) and report.sha256 == digest


def test_published_googlenet_uses_transform_input_and_drops_aux(offline_hub, monkeypatch, tmp_path, reference):
    state = reference_state(reference, "googlenet")  # torchvision's googlenet file carries the aux heads
    ckpt, data_path, _ = publish(monkeypatch, "googlenet", state, tmp_path)
    (offline_hub / "checkpoints").mkdir(parents=True)
    (offline_hub / "checkpoints" / ckpt.filename).write_bytes(data_path.read_bytes())
    model, report = create_model_with_report("inception", weights="imagenet")
    assert model.transform_input is True and model.aux1 is None
    assert report.dropped and all(k.startswith(("aux1.", "aux2.")) for k in report.dropped)


def test_published_checkpoint_is_downloaded_into_a_fresh_cache(offline_hub, monkeypatch, tmp_path, reference):
    state = reference_state(reference, "mobilenet_v3_small")
    ckpt, data_path, _ = publish(monkeypatch, "mobilenet_v3_small", state, tmp_path)
    calls = []

    def fake_download(url, dst, *args, **kwargs):  # like torch.hub's: needs dst's folder to exist
        calls.append(url)
        with open(dst, "wb") as fh:
            fh.write(data_path.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert not offline_hub.exists()
    assert_same_weights(create_model("mobilenet_v3_small", weights="imagenet"), state)
    assert calls == [ckpt.url]
    assert [p.name for p in (offline_hub / "checkpoints").iterdir()] == [ckpt.filename]
    create_model("mobilenet_v3_small", weights="imagenet")  # the second time from the cache
    assert len(calls) == 1


def test_bad_download_is_discarded(offline_hub, monkeypatch):
    ckpt = get_spec("resnet18").checkpoint("imagenet")

    def corrupt_download(url, dst, *args, **kwargs):
        with open(dst, "wb") as fh:
            fh.write(b"an HTML error page, say")

    monkeypatch.setattr(torch.hub, "download_url_to_file", corrupt_download)
    with pytest.raises(CheckpointError, match=f"expected {ckpt.sha256_prefix}.*discarded: try again"):
        create_model("resnet18", weights="imagenet")
    assert list((offline_hub / "checkpoints").iterdir()) == []  # nothing bad left in the cache


def test_cached_file_with_wrong_hash_is_refused(offline_hub):
    ckpt = get_spec("resnet18").checkpoint("imagenet")
    cached = hub_cache_path(ckpt)
    cached.parent.mkdir(parents=True)
    torch.save(create_model("resnet18").state_dict(), cached)  # loadable, but not the published file
    with pytest.raises(CheckpointError) as err:
        create_model("resnet18", weights="imagenet")
    message = one_line(err)
    assert str(cached) in message and f"expected {ckpt.sha256_prefix}" in message
    assert f"delete it and fetch {ckpt.url} again" in message


def test_offline_without_the_file_says_where_to_put_it(offline_hub):
    spec = get_spec("resnet50")
    ckpt = spec.checkpoint("imagenet")
    with pytest.raises(CheckpointError) as err:
        create_model("resnet", weights="imagenet")
    message = one_line(err)
    assert f"put {ckpt.url} at {offline_hub / 'checkpoints' / 'resnet50-11ad3fa6.pth'}" in message
    assert "URLError" in message
    assert not any((offline_hub / "checkpoints").glob("*"))  # no partial file left behind


def test_torch_home_decides_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ckpt = get_spec("alexnet").checkpoint("imagenet")
    assert hub_cache_path(ckpt) == tmp_path / "th" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"


def test_published_name_that_does_not_exist(offline_hub):
    with pytest.raises(EdgeCNNError, match="no published checkpoint 'imagenet1k_v9' for resnet18"):
        create_model("resnet18", weights="imagenet1k_v9")


@pytest.mark.parametrize("weights", ["model.pth.tar", "runs/best", "ckpt.safetensors"])
def test_anything_path_like_is_a_file(tmp_path, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=f"checkpoint '{weights}' does not exist"):
        create_model("resnet18", weights=weights)


def test_relative_path_without_extension(tmp_path, monkeypatch, reference):
    monkeypatch.chdir(tmp_path)
    state = reference_state(reference, "mobilenet_v3_small")
    save(state, tmp_path / "mine")
    assert_same_weights(create_model("mobilenet_v3_small", weights="mine"), state)
