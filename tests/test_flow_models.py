"""Flow networks (SPEC section 11): the widened first convolution, vgg16flow and its UCF101 weights."""
import argparse

import pytest
import torch
import torch.nn as nn
import torchvision

import opts as options
from models import create_model
from models.flow_input import widen_first_conv
from models.vgg16flow import vgg16flow


def parse(tmp_path, *flags):
    return options.parse(["--device", "cpu", "--nclass", "157", "--nhidden", "3", "--cache-dir", str(tmp_path),
                          *flags])


@pytest.mark.parametrize("arch, conv", [("resnet18", "conv1"), ("vgg11", "features.0")])
def test_widen_first_conv_averages_rgb_filters(arch, conv):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    old = model.get_submodule(conv)
    with torch.no_grad():  # a nonzero bias, so copying it is checked (resnet's conv1 has none)
        if old.bias is not None:
            old.bias.uniform_(-1, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    widen_first_conv(model, 20)
    new = model.get_submodule(conv)
    assert isinstance(new, nn.Conv2d) and new.in_channels == 20 and new.out_channels == old.out_channels
    for attr in ("kernel_size", "stride", "padding", "dilation", "groups"):
        assert getattr(new, attr) == getattr(old, attr), attr
    w = before[conv + ".weight"]
    mean = (w[:, 0] + w[:, 1] + w[:, 2]) / 3
    for c in range(20):
        torch.testing.assert_close(new.weight[:, c], mean)
    assert (new.bias is None) == (old.bias is None)
    if old.bias is not None:
        assert torch.equal(new.bias, before[conv + ".bias"])
    after = model.state_dict()
    assert set(after) == set(before)
    for k in before:
        if k != conv + ".weight":
            assert torch.equal(after[k], before[k]), k
    assert model(torch.randn(2, 20, 32, 32)).shape == (2, 1000)


def test_widen_first_conv_without_rgb_conv_fails():
    with pytest.raises(ValueError, match="3 input channels"):
        widen_first_conv(nn.Sequential(nn.Conv2d(5, 4, 3)))


def test_create_model_torchvision_arch_takes_flow(tmp_path):
    model, _, _ = create_model(parse(tmp_path, "--arch", "resnet18", "--dataset", "charadesflow"))
    assert model.conv1.in_channels == 20
    a, aa = model.eval()(torch.randn(2, 20, 64, 64))
    assert a.shape == (2, 157) and aa.shape == (2, 157, 157)
    rgb, _, _ = create_model(parse(tmp_path, "--arch", "resnet18", "--dataset", "charadesrgb"))
    assert rgb.conv1.in_channels == 3  # only flow datasets widen


def test_create_model_widens_after_loading_pretrained_weights(tmp_path):
    torch.manual_seed(1)
    src = torchvision.models.resnet18(weights=None)
    path = tmp_path / "rgb.pth"
    torch.save(src.state_dict(), path)
    model, _, _ = create_model(parse(tmp_path, "--arch", "resnet18", "--dataset", "charadesflow",
                                     "--pretrained-weights", str(path)))
    mean = src.conv1.weight.detach().mean(1, keepdim=True).expand(-1, 20, -1, -1)
    torch.testing.assert_close(model.conv1.weight, mean)
    assert torch.equal(model.layer1[0].conv1.weight, src.layer1[0].conv1.weight)


def test_vgg16flow_is_the_original_network():
    with torch.device("meta"):  # shapes only: nothing allocated
        model = vgg16flow(argparse.Namespace())
        fmap = model.features(torch.empty(1, 20, 40, 40)).shape
    assert model.features[0].weight.shape == (64, 20, 3, 3) and model.classifier[6].weight.shape == (101, 4096)
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.9, 0.8]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all(m.ceil_mode for m in pools)
    assert fmap == (1, 512, 2, 2)  # 40 -> 20 -> 10 -> 5 -> 3 -> 2 (floor mode: ... 5 -> 2 -> 1)


def original_key(key: str) -> str:
    """This project's vgg16flow key in the original's flat nn.Sequential (pytorch/models/vgg16flow.py)."""
    part, index, rest = key.split(".", 2)
    return f"{index}.{rest}" if part == "features" else f"{int(index) + 32}.1.{rest}"


@pytest.fixture
def no_init(monkeypatch):
    """VGG-16's random initialisation (~2 s) is skipped: a weights file overwrites it anyway."""
    for name in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_"):
        monkeypatch.setattr(nn.init, name, lambda t, *args, **kwargs: t)


@pytest.mark.parametrize("layout", ["torchvision", "original"])
def test_vgg16flow_loads_ucf101_weights_in_either_layout(tmp_path, no_init, layout):
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg16flow(argparse.Namespace()).state_dict().items()}
    assert len(shapes) == 2 * 13 + 2 * 3
    # distinct random values per tensor, each expanded from one row: a file of a few hundred kB
    g = torch.Generator().manual_seed(2)
    saved = {k: torch.randn(shape[-1], generator=g).expand(shape) for k, shape in shapes.items()}
    path = tmp_path / "ucf101_flow_vgg16.pth"
    rename = original_key if layout == "original" else (lambda k: k)
    torch.save({rename(k): v for k, v in saved.items()}, path)
    if layout == "original":
        assert {"0.weight", "28.bias", "32.1.weight", "35.1.bias", "38.1.weight"} <= set(torch.load(path))
    model, _, _ = create_model(parse(tmp_path, "--arch", "vgg16flow", "--dataset", "charadesflow",
                                     "--pretrained-weights", str(path)))
    state = model.state_dict()
    loaded = [k for k in saved if not k.startswith("classifier.6.")]  # the AsyncTF head replaced it
    assert len(loaded) == 2 * 13 + 4
    for k in loaded:
        assert torch.equal(state[k], saved[k]), k
    assert model.features[0].in_channels == 20  # not widened again
    a, aa = model.eval()(torch.randn(2, 20, 64, 64))
    assert a.shape == (2, 157) and aa.shape == (2, 157, 157)


def test_pretrained_weights_that_do_not_fit_are_an_error(tmp_path):
    """Never a silent start from scratch: the file and a few unmatched keys are named."""
    path = tmp_path / "other.pth"
    torch.save({"0.weight": torch.zeros(64, 20, 3, 3), "0.bias": torch.zeros(64), "conv1.weight": torch.zeros(1)},
               path)
    with pytest.raises(ValueError, match=r"other\.pth: only 0 of its 3 tensors fit.*0\.bias \(64,\) \(not in "
                                         r"the model\).*conv1\.weight \(1,\) \(the model's is \(64, 3, 7, 7\)\)"):
        create_model(parse(tmp_path, "--arch", "resnet18", "--pretrained-weights", str(path)))


def test_missing_pretrained_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model(parse(tmp_path, "--arch", "resnet18", "--dataset", "charadesflow",
                           "--pretrained-weights", missing))
