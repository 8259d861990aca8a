#!/usr/bin/env python
"""AsyncTF, RGB stream: ResNet-152 with the AsyncTF head (the published 26.1% mAP model).

    python exp/asynctf_rgb.py [--any-flag value ...]   # command-line flags override the ones below

Re-running the same command resumes from ./cache/asynctf_rgb/model.pth.tar.
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

NAME = os.path.splitext(os.path.basename(__file__))[0]
CHARADES = os.environ.get("CHARADES", "/path/to/Charades/")  # holds Charades_v1_rgb/ and the CSVs
CACHE = "./cache/"

FLAGS = [
    "--name", NAME, "--cache-dir", CACHE,
    "--dataset", "charadesrgb",
    "--data", os.path.join(CHARADES, "Charades_v1_rgb"),
    "--train-file", os.path.join(CHARADES, "Charades_v1_train.csv"),
    "--val-file", os.path.join(CHARADES, "Charades_v1_test.csv"),
    "--arch", "resnet152", "--pretrained",
    "--lr", "2.5e-3", "--lr-decay-rate", "3",
    "--batch-size", "50", "--print-freq", "1",
    "--train-size", "0.2", "--val-size", "0.2",
    "--nhidden", "3", "--temporal-weight", "0.03", "--temporalloss-weight", "1.2",
    "--memory-decay", "1.0", "--memory-size", "20", "--sigma", "300",
    "--adjustment", "--originalloss-weight", "15", "--balanceloss", "--window-smooth", "1",
]

if __name__ == "__main__":
    sys.exit(cli.run(partial(experiment, FLAGS)))
