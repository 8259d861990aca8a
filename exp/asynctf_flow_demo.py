#!/usr/bin/env python
"""The flow stream on the embedded demo dataset (CPU, minutes): the demo's RGB settings on the rendered
optical-flow frames, with resnet18's first convolution widened to 20 channels.  Fuse with the RGB demo:

    python combine_rgb_flow.py cache/asynctf_rgb_demo/epoch_NNN.txt cache/asynctf_flow_demo/epoch_NNN.txt > fused.txt
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from main import experiment  # noqa: E402
from utils import cli  # noqa: E402
from datasets.demo import ensure_demo_data  # noqa: E402

from asynctf_rgb_demo import DEMO, FLAGS as RGB_FLAGS, report  # noqa: E402  (exp/ is on sys.path)

NAME = os.path.splitext(os.path.basename(__file__))[0]
FLAGS = RGB_FLAGS + ["--name", NAME, "--dataset", "charadesflow", "--data", os.path.join(DEMO, "flow")]

def main(argv: list[str] | None = None) -> int:
    """Render the demo's RGB and flow frames if needed, train the flow stream, report (the demo's check)."""
    ensure_demo_data(DEMO, flow=True)
    return report(experiment(FLAGS, argv)["cache"])


if __name__ == "__main__":
    sys.exit(cli.run(main))
