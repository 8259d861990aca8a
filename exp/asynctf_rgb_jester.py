#!/usr/bin/env python
"""AsyncTF, RGB stream, on 20BN-jester-v1 (27 gestures): the original's exp/asynctf_rgb_jester.py.

    python exp/asynctf_rgb_jester.py [--any-flag value ...]   # command-line flags override the ones below

Frames ``$JESTER/20bn-jester-v1/<id>/NNNNN.jpg``; the class list ``jester-v1-labels.csv`` is read from next
to the train CSV (``--labels-file`` elsewhere).  No training flip by default (``--flip original`` for the
original's).  Re-running the same command resumes from ./cache/asynctf_rgb_jester/model.pth.tar.
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

NAME = os.path.splitext(os.path.basename(__file__))[0]
JESTER = os.environ.get("JESTER", "/path/to/jester/")  # holds 20bn-jester-v1/ and the jester-v1-*.csv files
CACHE = "./cache/"

FLAGS = [
    "--name", NAME, "--cache-dir", CACHE,
    "--dataset", "jesterrgb", "--nclass", "27",
    "--data", os.path.join(JESTER, "20bn-jester-v1"),
    "--train-file", os.path.join(JESTER, "jester-v1-train.csv"),
    "--val-file", os.path.join(JESTER, "jester-v1-validation.csv"),
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
