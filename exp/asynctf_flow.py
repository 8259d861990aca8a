#!/usr/bin/env python
"""AsyncTF, optical-flow stream: VGG-16 on 10 stacked flow pairs, started from a UCF101 flow model.

    python exp/asynctf_flow.py [--any-flag value ...]   # command-line flags override the ones below

The UCF101 flow VGG-16 is not downloadable from here: put its state dict (the original's flat layout,
``0.weight`` ... ``38.1.weight``, or torchvision's VGG-16 layout, ``features.0.weight`` ... ``classifier.6.weight``;
20-channel first convolution, 101 classes) at ``$CHARADES/ucf101_flow_vgg16.pth``, or pass
``--pretrained-weights FILE``.  Without it the network trains from scratch (a warning says so).
Re-running the same command resumes from ./cache/asynctf_flow/model.pth.tar.
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402

NAME = os.path.splitext(os.path.basename(__file__))[0]
CHARADES = os.environ.get("CHARADES", "/path/to/Charades/")  # holds Charades_v1_flow/ and the CSVs
CACHE = "./cache/"
UCF101_FLOW = os.path.join(CHARADES, "ucf101_flow_vgg16.pth")

FLAGS = [
    "--name", NAME, "--cache-dir", CACHE,
    "--dataset", "charadesflow",
    "--data", os.path.join(CHARADES, "Charades_v1_flow"),
    "--train-file", os.path.join(CHARADES, "Charades_v1_train.csv"),
    "--val-file", os.path.join(CHARADES, "Charades_v1_test.csv"),
    "--arch", "vgg16flow",
    "--lr", "5e-3", "--lr-decay-rate", "15",
    "--batch-size", "64", "--print-freq", "1",
    "--train-size", "0.2", "--val-size", "0.1",
    "--nhidden", "3", "--temporal-weight", "0.03", "--temporalloss-weight", "1.2",
    "--memory-decay", "1.0", "--memory-size", "20", "--sigma", "300",
    "--adjustment", "--originalloss-weight", "15", "--balanceloss", "--window-smooth", "1",
]
# A missing file given to --pretrained-weights is an error; here only pass it when it exists, so the
# experiment still runs (from scratch) for a user without the UCF101 model, but says so loudly.
if os.path.isfile(UCF101_FLOW):
    FLAGS += ["--pretrained-weights", UCF101_FLOW]
elif os.path.isdir(os.path.join(CHARADES, "Charades_v1_flow")) and \
        not any(a.startswith("--pretrained-weights") for a in sys.argv[1:]):  # without data, the data is the news
    print(f"WARNING: {UCF101_FLOW} not found: vgg16flow starts from random weights (expect a much lower "
          "mAP); put the UCF101 flow VGG-16 state dict there or pass --pretrained-weights FILE",
          file=sys.stderr)

if __name__ == "__main__":
    sys.exit(cli.run(partial(experiment, FLAGS)))
