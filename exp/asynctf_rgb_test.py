#!/usr/bin/env python
"""Evaluate the released RGB model (asynctf_rgb.pth.tar) with the settings of exp/asynctf_rgb.py."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402

from asynctf_rgb import FLAGS as RGB_FLAGS  # noqa: E402  (exp/ is on sys.path when run as a script)

NAME = os.path.splitext(os.path.basename(__file__))[0]
FLAGS = RGB_FLAGS + ["--name", NAME, "--evaluate", "--resume", "asynctf_rgb.pth.tar"]

if __name__ == "__main__":
    experiment(FLAGS)
