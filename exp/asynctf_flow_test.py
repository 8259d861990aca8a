#!/usr/bin/env python
"""Evaluate a trained flow model (asynctf_flow.pth.tar) with the settings of exp/asynctf_flow.py."""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

from asynctf_flow import FLAGS as FLOW_FLAGS  # noqa: E402  (exp/ is on sys.path when run as a script)

NAME = os.path.splitext(os.path.basename(__file__))[0]
FLAGS = FLOW_FLAGS + ["--name", NAME, "--evaluate", "--resume", "asynctf_flow.pth.tar"]

if __name__ == "__main__":
    sys.exit(cli.run(partial(experiment, FLAGS)))
