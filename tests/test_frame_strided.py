"""The frames feature extraction takes (``frame_strided.strided_frames`` / ``strided_index``): the rule, flow
stacks that must fit, frame gaps, a subset of the videos, the video-level targets."""
import pytest

from datasets.frame_files import Listing
from datasets.frame_index import build_index
from datasets.frame_strided import strided_frames, strided_index
from utils.charades_csv import Video


def test_strided_frames_rule():
    assert strided_frames(10, 4).tolist() == [1, 5, 9]
    assert strided_frames(9, 4).tolist() == [1, 5, 9] and strided_frames(8, 4).tolist() == [1, 5]
    assert strided_frames(20, 24 / 5).tolist() == [1, 5, 10, 15, 20]  # 5 fps: t = 0, 0.2, ..., 0.8 s
    assert strided_frames(24 * 60, 24 / 5)[-1] == 24 * 60 - 4  # k*4.8 that is an integer does not floor low
    assert strided_frames(20, 4.8, span=10).tolist() == [1, 5, 10]  # a 10-frame stack must fit
    assert strided_frames(0, 1).tolist() == [] and strided_frames(1, 7).tolist() == [1]
    with pytest.raises(ValueError, match="positive"):
        strided_frames(5, 0)


def test_strided_index_gaps_subset_and_targets():
    videos = [Video("A", ((1, 0.0, 1.0), (3, 0.0, 0.5)), 1.0), Video("B", ((2, 0.0, 1.0),), 1.0),
              Video("C", (), 1.0), Video("E", ((0, 0.0, 1.0),), 1.0)]
    listings = [Listing(12, (5, 6)), Listing(7), Listing(0), Listing(4, (1, 3))]
    val_video = build_index(videos, listings, "val_video", test_frames=4, gaps="present")
    out = strided_index(val_video, 2, listings={"A": listings[0], "E": listings[3]})
    rows = [(out.video_id(i), int(out.frame[i]), out.classes(i).tolist()) for i in range(len(out))]
    assert rows == [("A", f, [1, 3]) for f in (1, 3, 7, 9, 11)] + [("B", f, [2]) for f in (1, 3, 5, 7)]
    assert out.ids.tolist() == ["A", "B"] and out.skipped.tolist() == ["C", "E"]  # E: only frames 2 and 4, unsampled
    only_b = strided_index(val_video, 3, videos=["B"])
    assert only_b.ids.tolist() == ["B"] and only_b.frame.tolist() == [1, 4, 7] and only_b.video.tolist() == [0] * 3
