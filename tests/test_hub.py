"""checkpoints/hub.py: ``--pretrained`` reads torchvision's file from a (fake) hub cache in tmp_path
(TORCH_HOME) through the safe loader, with the hash in its name checked; a pickle that would create a
folder when unpickled must never create it."""
import hashlib
import os

import pytest
import torch
import torchvision

import opts as options
from checkpoints import CheckpointError, UntrustedCheckpointError
from checkpoints import hub
from models import build_network

URL = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url  # .../resnet18-f37072fd.pth


class Evil:
    """Unpickling this calls ``os.makedirs(marker)``: any code could run instead."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def resnet18_opts(tmp_path, *flags):
    return options.parse(["--arch", "resnet18", "--pretrained", "--nclass", "5", "--nhidden", "2",
                          "--cache-dir", str(tmp_path / "cache"), *flags])


def test_a_pickle_at_torchvisions_path_is_refused_without_running(torch_home, tmp_path):
    path = torch_home / os.path.basename(URL)
    marker = tmp_path / "code_ran"
    torch.save({"conv1.weight": Evil(str(marker))}, path)
    assert hub.hub_path(URL) == str(path)
    for flags in ((), ("--trust-checkpoint",)):  # trusted or not, the file is not the one its name says
        with pytest.raises(hub.HubFileError, match="not the file its name promises.*delete it") as err:
            build_network(resnet18_opts(tmp_path, *flags))
        assert str(path) in str(err.value) and "f37072fd" in str(err.value)
        assert not marker.exists()


def test_a_file_whose_hash_matches_its_name_still_loads_safely(torch_home, tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"w": Evil(str(marker))}, tmp_path / "evil.pth")
    data = (tmp_path / "evil.pth").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = torch_home / f"evil-{digest[:8]}.pth"  # the name carries the file's own hash prefix
    path.write_bytes(data)
    url = f"https://example.invalid/weights/{path.name}"
    hub.check_hash(str(path), url)  # passes: the prefix is right
    with pytest.raises(UntrustedCheckpointError, match="os.makedirs|posix.makedirs"):
        hub.load_hub_weights(url)
    assert not marker.exists()


def test_a_damaged_file_is_named_with_the_fix(torch_home):
    good = {"w": torch.arange(4.0)}
    torch.save(good, torch_home / "tmp.pth")
    data = (torch_home / "tmp.pth").read_bytes()
    path = torch_home / f"net-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    path.write_bytes(data)
    url = f"https://example.invalid/{path.name}"
    assert torch.equal(hub.load_hub_weights(url)["w"], good["w"])
    path.write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(hub.HubFileError, match=f"{path.name}.*delete it to download it again.*{url}"):
        hub.load_hub_weights(url)
    path.write_bytes(data)
    hub_name_without_hash = torch_home / "plain.pth"  # no hash in the name: nothing to check (as torchvision)
    hub_name_without_hash.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        hub.load_hub_weights("https://example.invalid/plain.pth")


def test_torchvision_builds_the_model_from_the_checked_file(torch_home, tmp_path, monkeypatch):
    """The whole route: torchvision's resnet18 builder gets its state dict from load_hub_weights."""
    torch.manual_seed(0)
    weights = torchvision.models.resnet18().state_dict()
    path = torch_home / os.path.basename(URL)
    torch.save(weights, path)
    real = hub.sha256_of
    monkeypatch.setattr(hub, "sha256_of", lambda p: "f37072fd" + real(p)[8:])  # stands for the real file
    checked = []
    monkeypatch.setattr(hub, "check_hash", lambda p, u, check=hub.check_hash: (checked.append(p), check(p, u)))
    model = build_network(resnet18_opts(tmp_path))
    assert checked == [str(path)]
    assert torch.equal(model.conv1.weight, weights["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, weights["layer4.1.bn2.running_var"])
    assert model.fc.mA.out_features == 5  # the AsyncTF head replaced torchvision's classifier
    import torchvision.models._api as api
    assert api.load_state_dict_from_url is torch.hub.load_state_dict_from_url  # restored afterwards
