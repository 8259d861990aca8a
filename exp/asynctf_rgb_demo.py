#!/usr/bin/env python
"""The whole pipeline on the embedded demo dataset, on CPU, in a few minutes.

Renders the demo frame tree once (real Charades annotations of data/demo/, synthetic frames; see
datasets/demo/), trains AsyncTF on it with a small ResNet, writes the epoch and localisation
submissions, and prints the official mAP against chance (the same file with its rows shuffled across
videos).  Extra command-line flags override the ones below.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from main import experiment  # noqa: E402
from datasets.demo import DEMO_TEST_CSV, DEMO_TRAIN_CSV, ensure_demo_data  # noqa: E402
from utils.charades_eval import report_against_chance  # noqa: E402

NAME = os.path.splitext(os.path.basename(__file__))[0]
DEMO = os.path.join(REPO, "demo_data")
CACHE = os.path.join(REPO, "cache")

FLAGS = [
    "--name", NAME, "--cache-dir", CACHE,
    "--dataset", "charadesrgb", "--data", os.path.join(DEMO, "rgb"),
    "--train-file", DEMO_TRAIN_CSV, "--val-file", DEMO_TEST_CSV,
    "--arch", "resnet18", "--inputsize", "32", "--device", "cpu", "--workers", "2",
    "--epochs", "20", "--lr", "0.05", "--lr-decay-rate", "14", "--batch-size", "32",
    "--weight-decay", "5e-4", "--train-size", "1.0", "--val-size", "0.05", "--print-freq", "20", "--localize",
    "--nhidden", "3", "--temporal-weight", "0.03", "--temporalloss-weight", "1.2",
    "--memory-decay", "1.0", "--memory-size", "20", "--sigma", "300",
    "--adjustment", "--originalloss-weight", "15", "--balanceloss", "--window-smooth", "1",
]

if __name__ == "__main__":
    ensure_demo_data(DEMO)
    run = experiment(FLAGS)
    report_against_chance(run["cache"], DEMO_TEST_CSV)
