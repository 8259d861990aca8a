"""models/__init__.py: which torchvision weights ``--pretrained [TAG]`` loads, and from where (no network:
the hub cache is a temporary folder and downloads are refused)."""
import os
import urllib.error

import pytest
import torch
import torchvision

import opts as options
from checkpoints import hub as hub_module
from models import build_network

ARCH = "mobilenet_v2"  # small, and its DEFAULT (IMAGENET1K_V2) is not the original's IMAGENET1K_V1


def parse(tmp_path, *flags):
    return options.parse(["--device", "cpu", "--arch", ARCH, "--nclass", "5", "--nhidden", "2",
                          "--cache-dir", str(tmp_path), *flags])


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; any download attempt fails as it would without a network."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError(f"no network (test): {url}")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints"


def cached_file(hub, tag: str) -> str:
    """Where torchvision looks for the weights ``tag`` of ARCH in the hub cache."""
    url = torchvision.models.get_model_weights(ARCH)[tag].url
    return str(hub / os.path.basename(url))


def test_pretrained_loads_imagenet1k_v1_from_the_hub_cache(tmp_path, hub, monkeypatch):
    torch.manual_seed(0)
    state = torchvision.models.get_model(ARCH, weights=None).state_dict()
    os.makedirs(hub, exist_ok=True)
    # a random state dict under the V1 name, standing for torchvision's file: the hash in its name is
    # checked at every load (checkpoints/hub.py, tested in tests/test_hub.py), so it is made to agree
    torch.save(state, cached_file(hub, "IMAGENET1K_V1"))
    real = hub_module.sha256_of
    monkeypatch.setattr(hub_module, "sha256_of", lambda path: "b0353104" + real(path)[8:])
    model = build_network(parse(tmp_path, "--pretrained"))
    got = model.state_dict()
    kept = [k for k in state if not k.startswith("classifier.1.")]   # the last linear became the head
    assert len(kept) == len(state) - 2
    for k in kept:
        assert torch.equal(got[k], state[k]), k


def test_no_network_error_names_the_v1_file(tmp_path, hub):
    with pytest.raises(RuntimeError) as err:
        build_network(parse(tmp_path, "--pretrained"))
    v1 = cached_file(hub, "IMAGENET1K_V1")
    assert v1.endswith("mobilenet_v2-b0353104.pth") and v1 in str(err.value)
    assert torchvision.models.get_model_weights(ARCH).IMAGENET1K_V1.url in str(err.value)


def test_another_tag_and_unknown_tags(tmp_path, hub):
    o = parse(tmp_path, "--pretrained", "IMAGENET1K_V2")
    assert o.pretrained == "IMAGENET1K_V2"
    with pytest.raises(RuntimeError, match=cached_file(hub, "IMAGENET1K_V2")):
        build_network(o)
    with pytest.raises(ValueError, match="IMAGENET1K_V9.*available: IMAGENET1K_V1, IMAGENET1K_V2"):
        build_network(parse(tmp_path, "--pretrained", "IMAGENET1K_V9"))
    # an arch without V1 weights: bare --pretrained says what there is, before building anything
    with pytest.raises(ValueError, match="vit_h_14; available: IMAGENET1K_SWAG_E2E_V1"):
        build_network(parse(tmp_path, "--pretrained", "--arch", "vit_h_14"))


def test_pretrained_tag_parsing(tmp_path):
    for flags in (("--pretrained",), ("--pretrained", "true"), ("--pretrained", "IMAGENET1K_V1")):
        assert parse(tmp_path, *flags).pretrained == "IMAGENET1K_V1"
    assert parse(tmp_path).pretrained is False
    assert parse(tmp_path, "--pretrained", "false").pretrained is False
    assert parse(tmp_path, "--pretrained", "--lr", "0.5").pretrained == "IMAGENET1K_V1"
