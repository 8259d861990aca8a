"""checkpoints/stream.py: a checkpoint's stream told by its first convolution, whatever the arch, through a
saved file (DataParallel's ``module.`` keys included)."""
import torch

import opts as options
from checkpoints import atomic_torch_save, load_weights_file
from checkpoints.stream import checkpoint_stream, input_channels
from models import build_network


def saved_state(tmp_path, *flags):
    o = options.parse(["--cache-dir", str(tmp_path), "--nclass", "5", "--inputsize", "32", *flags])
    model = build_network(o)
    path = str(tmp_path / "ckpt.pth.tar")
    state = {("module." + k if "resnet" in o.arch else k): v for k, v in model.state_dict().items()}
    atomic_torch_save({"epoch": 1, "arch": o.arch, "state_dict": state}, path)
    return load_weights_file(path)


def test_stream_from_the_first_convolution(tmp_path):
    assert checkpoint_stream(saved_state(tmp_path, "--arch", "resnet18")) == "rgb"
    flow = saved_state(tmp_path, "--arch", "resnet18", "--dataset", "charadesflow")
    assert input_channels(flow) == 20 and checkpoint_stream(flow) == "flow"
    assert checkpoint_stream(saved_state(tmp_path, "--arch", "mobilenet_v3_small", "--dataset", "charadesflow")) == "flow"
    assert checkpoint_stream(saved_state(tmp_path, "--arch", "linear")) is None   # no convolution: nothing to say
    assert checkpoint_stream({"conv.weight": torch.zeros(8, 2, 3, 3)}) is None  # neither 3 nor 20 channels
