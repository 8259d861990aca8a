"""Flow networks (SPEC section 11): the widened first convolution, vgg16flow and its UCF101 weights."""
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


def test_vgg16flow_loads_ucf101_layout_and_gives_asynctf_outputs(tmp_path):
    torch.manual_seed(2)
    ucf = vgg16flow(parse(tmp_path, "--arch", "vgg16flow"))
    assert ucf.features[0].weight.shape == (64, 20, 3, 3) and ucf.classifier[6].weight.shape == (101, 4096)
    assert [m.p for m in ucf.classifier if isinstance(m, nn.Dropout)] == [0.9, 0.8]
    saved = {k: v.clone() for k, v in ucf.state_dict().items()}
    path = tmp_path / "ucf101_flow_vgg16.pth"
    torch.save(saved, path)
    del ucf
    model, _, _ = create_model(parse(tmp_path, "--arch", "vgg16flow", "--dataset", "charadesflow",
                                     "--pretrained-weights", str(path)))
    state = model.state_dict()
    loaded = [k for k in saved if k.startswith(("features.", "classifier.0.", "classifier.3."))]
    assert len(loaded) == 2 * 13 + 4
    for k in loaded:
        assert torch.equal(state[k], saved[k]), k
    assert model.features[0].in_channels == 20  # not widened again
    a, aa = model.eval()(torch.randn(2, 20, 64, 64))
    assert a.shape == (2, 157) and aa.shape == (2, 157, 157)


def test_missing_pretrained_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model(parse(tmp_path, "--arch", "resnet18", "--dataset", "charadesflow",
                           "--pretrained-weights", missing))
