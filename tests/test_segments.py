"""The segment rule (utils/segments.py) on hand-made probability sequences, and the localisation rows of a
prediction (utils/predictions.py)."""
import numpy as np
import pytest

from utils.predictions import VideoPrediction
from utils.segments import SegmentRule, frame_spans, moving_average, runs, segments
from utils.submission import localization_rows


def test_spans_runs_and_smoothing_by_hand():
    # frames at 0, 1, 2, 4 s of a 5-s video: spans [0, .5), [.5, 1.5), [1.5, 3), [3, 5)
    assert frame_spans(np.array([0.0, 1, 2, 4]), 5.0).tolist() == [0, 0.5, 1.5, 3, 5]
    assert runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    p = np.array([[0.0], [3.0], [6.0], [9.0]])
    assert moving_average(p, 1)[:, 0].tolist() == [1.5, 3.0, 6.0, 7.5]  # (0+3)/2, (0+3+6)/3, ..., (6+9)/2


def test_threshold_merge_and_minimum_length():
    times = np.arange(10.0)  # one frame a second, 10 s
    p = np.zeros((10, 3))
    p[[1, 2], 0] = 0.9              # class 0: 0.5 .. 2.5 s
    p[[5, 7], 0] = 0.8              # one-frame gap at 6 s (1 s): merged with each other, not with the first
    p[9, 1] = 0.95                  # class 1: one frame, 8.5 .. 10 s (1.5 s long)
    p[4, 2] = 0.7                   # class 2: one frame, 3.5 .. 4.5 s (1 s long)
    rule = SegmentRule(threshold=0.5, smooth=0, merge_gap=1.0, min_length=1.2)
    got = [(s.index, s.start, s.end, round(s.score, 4)) for s in segments(p, times, 10.0, rule)]
    # class 0: [0.5, 2.5) and [4.5, 7.5) (frames 5..7: mean (0.8 + 0 + 0.8) / 3); class 2's 1 s is dropped
    assert got == [(1, 8.5, 10.0, 0.95), (0, 0.5, 2.5, 0.9), (0, 4.5, 7.5, 0.5333)]
    # no merging: the two frames of class 0 stay apart and, 1 s each, are dropped
    got = segments(p, times, 10.0, SegmentRule(0.5, 0, 0.0, 1.2))
    assert [(s.index, s.start, s.end) for s in got] == [(1, 8.5, 10.0), (0, 0.5, 2.5)]
    # smoothing over 3 frames lowers the lone frames under the threshold: 0.95 / 2 at the end
    got = segments(p, times, 10.0, SegmentRule(0.5, 1, 0.0, 0.0))
    assert [(s.index, s.start, s.end) for s in got] == [(0, 0.5, 2.5), (0, 5.5, 6.5)]
    # a video shorter than the minimum length keeps its whole-video segment
    assert [(s.start, s.end) for s in segments(np.ones((2, 1)), np.array([0.0, 0.5]), 0.8,
                                               SegmentRule(0.5, 0, 0.0, 5.0))] == [(0.0, 0.8)]


def test_localization_rows_of_a_prediction():
    probs = np.random.default_rng(0).random((50, 4))
    times = np.arange(50) * 0.3  # a 15-s video at val_video's 50 times
    even = VideoPrediction("v", 15.0, np.arange(1, 51), times, probs, [])
    np.testing.assert_array_equal(even.localization(), probs[localization_rows(50)])
    # other frames: the one nearest each official time (j - 1) / 25 * 15 = 0, 0.6, 1.2, ...
    dense = VideoPrediction("v", 15.0, np.arange(1, 51), times, probs, [], even=False)
    np.testing.assert_array_equal(dense.localization(), probs[np.arange(25) * 2])
    shifted = VideoPrediction("v", 15.0, np.arange(1, 51), times + 0.16, probs, [], even=False)
    assert dense.localization().shape == (25, 4)
    np.testing.assert_array_equal(shifted.localization()[1:], probs[np.arange(1, 25) * 2 - 1])  # 0.46 < 0.6 < 0.76
    with pytest.raises(ValueError):
        segments(probs[:3], times, 15.0)
