"""utils/video_frames.py without videos: the frame rule on hand-made timestamps, the flow's 8-bit
mapping, the scaled size (the video tests are in test_extract_frames.py)."""
from fractions import Fraction

import numpy as np

from utils.video_frames import resample, scaled_size, to_uint8


def ms(*times):
    """A stream of (t, no duration, picture = t in ms)."""
    return [(Fraction(t, 1000), None, t) for t in times]


def shown(frames, fps=24, tol=Fraction(0)) -> list:
    return [p for p, count in resample(frames, Fraction(fps), tol) for _ in range(count)]


def test_resample_repeats_and_drops_by_hand():
    # 10 fps, 3 frames, end 0.3 s: 24 fps instants 0, 1/24, ... 7/24 < 0.3 -> 8 frames, 3 / 2 / 3 each
    ten = [(Fraction(i, 10), Fraction(1, 10), i) for i in range(3)]
    assert list(resample(ten, Fraction(24), Fraction(0))) == [(0, 3), (1, 2), (2, 3)]
    # 30 -> 24 fps: every fifth source frame is never shown (and never yielded, so never converted)
    thirty = [(Fraction(i, 30), Fraction(1, 30), i) for i in range(10)]
    assert shown(thirty) == [0, 1, 2, 3, 5, 6, 7, 8]


def test_resample_tolerance_for_rounded_timestamps():
    # WebM rounds 30 fps to whole ms (167 for 166.67): with half a unit of tolerance, instant 4/24 still
    # shows source frame 5 as the exact times say; without it, frame 4
    webm = ms(0, 33, 67, 100, 133, 167, 200)
    assert shown(webm, tol=Fraction(1, 2000)) == [0, 33, 67, 100, 167, 200]
    assert shown(webm) == [0, 33, 67, 100, 133, 200]
    # a second frame within the tolerance of the first instant is the one shown there
    assert list(resample([(Fraction(0), None, "a"), (Fraction(1, 2000), Fraction(1, 10), "b")], Fraction(24),
                         Fraction(1, 2000))) == [("b", 3)]


def test_resample_edge_cases():
    # a timestamp that goes back is dropped; the last frame lasts as long as the gap before it
    # (end 0.15 s: ceil(3.6) = 4 frames)
    assert list(resample(ms(0, 50, 40, 100), Fraction(24), Fraction(0))) == [(0, 2), (50, 1), (100, 1)]
    assert list(resample(ms(0), Fraction(24), Fraction(0))) == [(0, 1)]  # one frame, no duration: 1
    assert list(resample([], Fraction(24), Fraction(0))) == []
    # a last frame that no instant falls on (10..11 ms; the next instant is 41.7 ms) is never yielded
    assert list(resample([(Fraction(0), None, 0), (Fraction(10, 1000), Fraction(1, 1000), 10)], Fraction(24),
                         Fraction(0))) == [(0, 1)]
    # variable rate: 0, 40, 50, 120 ms, last lasting 80 ms (end 0.2 s -> ceil(4.8) = 5 frames at
    # 0, 41.7, 83.3, 125, 166.7 ms)
    vfr = [(Fraction(t, 1000), Fraction(80, 1000) if t == 120 else None, t) for t in (0, 40, 50, 120)]
    assert shown(vfr) == [0, 40, 50, 120, 120]


def test_flow_mapping_and_sizes():
    v = np.array([0.0, 2.0, -1.0, 20.0, -20.0, 35.0, -1e9, 0.07])
    assert to_uint8(v, 20.0).tolist() == [128, 140, 121, 255, 0, 255, 0, 128]  # round(255 * (v + 20) / 40)
    assert to_uint8(np.array([1.0]), 10.0).tolist() == [140]  # round(255 * 11 / 20) = round(140.25)
    assert scaled_size(854, 480, 256) == (455, 256) and scaled_size(480, 854, 256) == (256, 455)
    assert scaled_size(854, 480, 0) == (854, 480) and scaled_size(100, 100, 24) == (24, 24)
    assert scaled_size(100, 100, 1) == (1, 1) and scaled_size(300, 100, 1) == (3, 1)
