"""exp/asynctf_rgb_jester.py and exp/asynctf_rgb_somethingsomething.py: the original's values (SPEC
section 9), data paths at the top, command-line flags override them."""
from __future__ import annotations

import importlib.util
import os

import pytest

import opts as opts_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_exp(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "exp", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, dataset, nclass, data", [
    ("asynctf_rgb_jester", "jesterrgb", 27, "20bn-jester-v1"),
    ("asynctf_rgb_somethingsomething", "somethingrgb", 174, "frames"),
])
def test_original_values(tmp_path, name, dataset, nclass, data):
    exp = load_exp(name)
    o = opts_module.parse(exp.FLAGS + ["--cache-dir", str(tmp_path)])
    assert (o.name, o.dataset, o.nclass, o.arch, o.pretrained) == (name, dataset, nclass, "resnet152", "IMAGENET1K_V1")
    assert (o.lr, o.lr_decay_rate, o.epochs, o.batch_size, o.train_size, o.val_size) == (2.5e-3, 6, 20, 50, 0.2, 0.2)
    assert (o.nhidden, o.temporal_weight, o.temporalloss_weight, o.memory_decay, o.memory_size, o.sigma,
            o.window_smooth, o.originalloss_weight) == (3, 0.03, 1.2, 1.0, 20, 300, 3, 1.0)
    assert o.adjustment and o.balanceloss and o.print_freq == 1
    assert o.data.endswith(data) and o.train_file.endswith((".csv", ".json")) and "validation" in o.val_file
    assert opts_module.parse(exp.FLAGS + ["--lr", "0.1", "--cache-dir", str(tmp_path)]).lr == 0.1
