#!/usr/bin/env python
"""Evaluate the released RGB model with the settings of exp/asynctf_rgb.py, as the original's exp file did.

    wget -O asynctf_rgb.pth.tar "https://www.dropbox.com/s/1jqythww7fofyg3/asynctf_rgb.pth.tar?dl=1"
    python exp/asynctf_rgb_test.py      # in the folder holding asynctf_rgb.pth.tar

``--val-size 0.001`` (the original's) keeps the frame-level validation to a sliver; validate_video scores
every test video and writes ./cache/asynctf_rgb_test/epoch_NNN.txt with its official mAP (26.1% published).
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

from asynctf_rgb import FLAGS as RGB_FLAGS  # noqa: E402  (exp/ is on sys.path when run as a script)

NAME = os.path.splitext(os.path.basename(__file__))[0]
FLAGS = RGB_FLAGS + ["--name", NAME, "--evaluate", "--resume", "asynctf_rgb.pth.tar", "--val-size", "0.001"]

if __name__ == "__main__":
    sys.exit(cli.run(partial(experiment, FLAGS)))
