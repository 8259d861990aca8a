#!/usr/bin/env python
"""AsyncTF, RGB stream, on Something-Something v2 (174 classes): the original's
exp/asynctf_rgb_somethingsomething.py.

    python exp/asynctf_rgb_somethingsomething.py [--any-flag value ...]   # command-line flags override

Frames ``$SOMETHING/frames/<id>/<id>-NNNNNN.jpg``; the class list ``something-something-v2-labels.json`` is
read from next to the train JSON (``--labels-file`` elsewhere).  Training flips swap the left/right
template pairs by default (``--flip original`` for the original's flip, ``--flip none`` for none).
Re-running the same command resumes from ./cache/asynctf_rgb_somethingsomething/model.pth.tar.
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

NAME = os.path.splitext(os.path.basename(__file__))[0]
SOMETHING = os.environ.get("SOMETHING", "/path/to/somethingsomething/")  # frames/ and the v2 JSON files
CACHE = "./cache/"

FLAGS = [
    "--name", NAME, "--cache-dir", CACHE,
    "--dataset", "somethingrgb", "--nclass", "174",
    "--data", os.path.join(SOMETHING, "frames"),
    "--train-file", os.path.join(SOMETHING, "something-something-v2-train.json"),
    "--val-file", os.path.join(SOMETHING, "something-something-v2-validation.json"),
    "--arch", "resnet152", "--pretrained",
    "--lr", "2.5e-3", "--lr-decay-rate", "6", "--epochs", "20",
    "--batch-size", "50", "--print-freq", "1",
    "--train-size", "0.2", "--val-size", "0.2",
    "--nhidden", "3", "--temporal-weight", "0.03", "--temporalloss-weight", "1.2",
    "--memory-decay", "1.0", "--memory-size", "20", "--sigma", "300",
    "--adjustment", "--balanceloss", "--window-smooth", "3",
]

if __name__ == "__main__":
    sys.exit(cli.run(partial(experiment, FLAGS)))
