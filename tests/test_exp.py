"""exp/*.py: the experiment files are the original's flag lists."""
import importlib
from pathlib import Path

import opts as options


def exp_opts(monkeypatch, tmp_path, name: str):
    monkeypatch.syspath_prepend(str(Path(options.__file__).parent / "exp"))
    flags = importlib.import_module(name).FLAGS
    monkeypatch.chdir(tmp_path)  # the released model's file must exist where --resume names it
    (tmp_path / "asynctf_rgb.pth.tar").touch()
    return vars(options.parse(flags + ["--cache-dir", str(tmp_path)]))


def test_rgb_test_is_rgb_evaluated_on_the_released_model(monkeypatch, tmp_path):
    """The original's exp/asynctf_rgb_test.py: exp/asynctf_rgb.py plus --evaluate, --resume
    asynctf_rgb.pth.tar and --val-size 0.001 (validate on a sliver; validate_video scores every video)."""
    rgb, test = exp_opts(monkeypatch, tmp_path, "asynctf_rgb"), exp_opts(monkeypatch, tmp_path, "asynctf_rgb_test")
    assert test["evaluate"] is True and test["resume"] == "asynctf_rgb.pth.tar" and test["val_size"] == 0.001
    differ = {k for k in rgb if rgb[k] != test[k]}
    assert differ == {"name", "cache", "evaluate", "resume", "val_size"}
    assert rgb["pretrained"] == "IMAGENET1K_V1"  # the original's pretrained=True
