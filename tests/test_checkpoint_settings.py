"""The options and class names recorded in checkpoints (checkpoints/settings.py): a round trip through a
file loaded safely, flags that set them back, and what is refused."""
import pytest
import torch

import checkpoints
import opts as options
from checkpoints.settings import MODEL_OPTIONS, SettingsError, as_flags, model_settings, recorded_settings


def test_round_trip_through_a_safely_loaded_file(tmp_path):
    o = options.parse(["--arch", "resnet18", "--nclass", "3", "--sigma", "300", "--window-smooth", "1",
                       "--dataset", "charadesflow", "--temporal-weight", "0.03", "--cache-dir", str(tmp_path)])
    settings = model_settings(o, ["a", "b", "c"])
    torch.save({"state_dict": {}, "settings": settings}, tmp_path / "c.pth.tar")
    back = recorded_settings(checkpoints.load_checkpoint(str(tmp_path / "c.pth.tar")))  # weights_only load
    assert back == settings and back["class_names"] == ["a", "b", "c"] and back["sigma"] == 300.0
    again = options.build_parser().parse_args(as_flags(back))
    assert {k: getattr(again, k) for k in MODEL_OPTIONS} == {k: getattr(o, k) for k in MODEL_OPTIONS}
    assert recorded_settings({"state_dict": {}}) is None  # the released model, older checkpoints


@pytest.mark.parametrize("bad", [{"sigma": "wide"}, {"nclass": 2.5}, {"arch": 3}, {"nhidden": True},
                                 {"class_names": "a b"}, {"class_names": [1, 2]}])
def test_malformed_settings_are_named(bad):
    with pytest.raises(SettingsError, match=f"model.pth.tar: recorded .*{list(bad)[0]}"):
        recorded_settings({"settings": {"arch": "resnet18", **bad}}, "model.pth.tar")
    with pytest.raises(SettingsError, match="not a dict"):
        recorded_settings({"settings": [1]}, "x")
