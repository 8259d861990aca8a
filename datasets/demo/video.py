"""A demo video as an MP4 file, to try ``predict.py`` on a video that the demo checkpoint knows.

    python -m datasets.demo.video ID OUT.mp4 [--size 64] [--seed 0]

The frames of the demo video ``ID`` (a video of ``data/demo/``'s CSVs), rendered as for the demo tree
(``scene.render_frames``) and encoded as H.264 at 24 fps with PyAV (``pip install av``).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from fractions import Fraction

from datasets.demo.codes import frame_count
from datasets.demo.scene import render_frames
from datasets.demo.tree import DEMO_TEST_CSV, DEMO_TRAIN_CSV
from utils import cli
from utils.atomic import atomic_write
from utils.charades_csv import read_annotations


def write_demo_video(video_id: str, out: str, size: int = 64, seed: int = 0, crf: int = 18) -> int:
    """Encode demo video ``video_id`` into ``out`` (atomically); returns its frame count."""
    from utils.video_decode import require
    av = require("av")  # a missing PyAV: one line saying how to install it
    videos = {v.id: v for path in (DEMO_TEST_CSV, DEMO_TRAIN_CSV) for v in read_annotations(path)}
    if video_id not in videos:
        raise ValueError(f"{video_id} is not a demo video (see {DEMO_TEST_CSV})")
    video = videos[video_id]
    n = frame_count(video.length)

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=Fraction(24), options={"crf": str(crf)})
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            for start in range(1, n + 1, 48):
                for img in render_frames(video, range(start, min(start + 48, n + 1)), seed, size):
                    c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(s.encode())
    atomic_write(out, write)
    return n


def main(argv: Sequence[str] | None = None) -> None:
    p = cli.ArgumentParser(prog="python -m datasets.demo.video", description=__doc__.split("\n\n")[0])
    p.add_argument("id")
    p.add_argument("out")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"wrote {args.out}: {write_demo_video(args.id, args.out, args.size, args.seed)} frames at 24 fps")


if __name__ == "__main__":
    main()
