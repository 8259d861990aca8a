"""utils/video_frames.py without videos: the frame rule on hand-made timestamps, the flow's 8-bit
mapping, the scaled size, decoding on stand-ins for PyAV's objects (the video tests are in
test_extract_frames.py)."""
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from utils import video_frames
from utils.video_frames import MAX_GAP_S, frame_count, resample, scaled_size, shown_at, stream_end, to_uint8


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


def test_stream_end_and_shown_at_by_hand():
    # the end: the last timestamp plus its frame's duration, else plus the gap before it; a timestamp that
    # does not increase is dropped (and does not shorten that gap); a lone frame without duration ends at it
    assert stream_end([]) is None
    assert stream_end(ms(0, 40, 100)) == Fraction(160, 1000)
    assert stream_end(ms(0, 40, 100, 90, 100)) == Fraction(160, 1000)
    assert stream_end([(Fraction(0), None, "a"), (Fraction(1, 2), Fraction(1, 4), "b")]) == Fraction(3, 4)
    assert stream_end(ms(500)) == Fraction(1, 2)
    frames = ms(0, 40, 100, 130)
    assert frame_count(stream_end(frames), Fraction(24), Fraction(0)) == len(shown(frames))
    # the picture on screen at chosen output frames (1-based; repeats allowed): 10 fps shows 3 / 2 / 3 times
    ten = [(Fraction(i, 10), Fraction(1, 10), i) for i in range(3)]
    assert list(shown_at(ten, [1, 3, 4, 4, 8], Fraction(24), Fraction(0))) == [(1, 0), (3, 0), (4, 1), (4, 1),
                                                                                   (8, 2)]

    def cut_after_two():   # reading on past what the wanted frames need would fail
        yield from ten[:2]
        raise AssertionError("read past the last wanted frame")
    assert list(shown_at(cut_after_two(), [2], Fraction(24), Fraction(0))) == [(2, 0)]


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


def test_a_gap_is_held_at_most_max_gap():
    """Frames at 0, 1 and 7200 in a 1/12 s time base (tolerance 1/24): 14,402 output frames without the
    cap; with it the 600 s gap is shown for 10 s (240 frames), and the last frame as long again."""
    twelfth = [(Fraction(p, 12), None, p) for p in (0, 1, 7200)]
    notes: list[str] = []
    assert list(resample(twelfth, Fraction(24), Fraction(1, 24), notes)) == [(0, 1), (1, 240), (7200, 240)]
    assert notes == ["timestamp gap of 599.917 s after 0.0833333 s shortened to 10 s (the frames after it come "
                     "earlier by the difference)"]
    # several gaps: each shortened, one note counts them; a last duration of a day is cut too
    days = [(Fraction(0), None, "a"), (Fraction(100), None, "b"), (Fraction(105), None, "c"),
            (Fraction(86400), Fraction(86400), "d")]
    notes = []
    assert list(resample(days, Fraction(1), Fraction(0), notes)) == [("a", 10), ("b", 5), ("c", 10), ("d", 10)]
    assert notes[0].startswith("timestamp gap of 100 s after 0 s") and "1 more gap(s) over 10 s" in notes[0]
    # a gap up to 10 s is the video's own: kept exactly, nothing said
    notes = []
    assert list(resample(ms(0, 10000, 10040), Fraction(24), Fraction(0), notes)) == [(0, 240), (10000, 1), (10040, 1)]
    assert notes == [] and MAX_GAP_S == 10
    assert scaled_size(100, 100, 1) == (1, 1) and scaled_size(300, 100, 1) == (3, 1)
    assert scaled_size(120, 100, 1) == (1, 1) and scaled_size(100, 120, 1) == (1, 1)


# -- decoding, on stand-ins for PyAV's container, stream and frames (the real videos: test_extract_frames.py)

av = pytest.importorskip("av")
BAD = "bad packet"


class Frame:
    """A decoded frame: ``value`` fills its pixels."""

    def __init__(self, pts, duration=None, value=0, width=4, height=2, rotation=0):
        self.pts, self.duration, self.value = pts, duration, value
        self.width, self.height, self.rotation = width, height, rotation

    def reformat(self, width, height, interpolation):
        return Frame(self.pts, self.duration, self.value, width, height, self.rotation)

    def to_ndarray(self, format):
        return np.full((self.height, self.width, 3), self.value, np.uint8)


class Stream:
    def __init__(self, time_base, duration=None):
        self.time_base, self.duration = time_base, duration
        self.codec_context = SimpleNamespace(decode=self.decode)

    @staticmethod
    def decode(packet):  # one frame per packet; None flushes
        if packet == BAD:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return [] if packet is None else [packet]


class Container:
    def __init__(self, packets):
        self.packets, self.duration = packets, None

    def demux(self, stream):  # a packet that is an exception: the demuxer raises it
        for packet in self.packets:
            if isinstance(packet, Exception):
                raise packet
            yield packet

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def decode(packets, time_base=Fraction(1, 100)):
    notes = []
    return [(t, d, f.value) for t, d, f in video_frames.decoded(Container(packets), Stream(time_base), notes)], notes


def test_decoded_skips_bad_packets_and_says_so_once():
    frames, notes = decode([BAD, Frame(0, value=1), BAD, Frame(10, 5, value=2)])
    assert frames == [(0, None, 1), (Fraction(1, 10), Fraction(1, 20), 2)]
    assert notes == ["undecodable packet(s) skipped, first: [Errno 1094995529] Invalid data found when processing "
                     "input", "2 undecodable packets skipped in all"]
    assert len(decode([Frame(0), BAD, Frame(4)])[1]) == 1  # one bad packet: one note


def test_decoded_ends_where_the_container_breaks():
    broken = av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
    frames, notes = decode([Frame(0, value=1), Frame(10, value=2), broken, Frame(20, value=3)])
    assert [v for _, _, v in frames] == [1, 2]  # each frame once; nothing after the break
    assert notes == [f"demuxing stopped early: {broken}"]


def test_decoded_frame_without_timestamp_follows_the_previous_one():
    frames, _ = decode([Frame(7, value=1), Frame(57, 20, value=2), Frame(None, value=3)])
    assert frames == [(0, None, 1), (Fraction(1, 2), Fraction(1, 5), 2), (Fraction(7, 10), None, 3)]
    with pytest.raises(video_frames.VideoError, match="frames without timestamps"):
        decode([Frame(None)])
    with pytest.raises(video_frames.VideoError, match="frames without timestamps"):
        decode([Frame(0), Frame(None)])  # the previous frame has no duration either


def pictures_of(monkeypatch, frames, time_base, fps, declared=None):
    stream = Stream(time_base, declared / time_base if declared else None)
    monkeypatch.setattr(video_frames, "open_video", lambda path, threads: (Container(frames), stream))
    notes = []
    shown = [(np.asarray(p)[0, 0, 0], p.size, n) for p, n in video_frames.pictures("v.mp4", Fraction(fps), 0, 1, notes)]
    return shown, notes


def test_pictures_tolerance_rotation_and_a_short_stream(monkeypatch):
    # time base 1 ms, 24 fps: a timestamp may be half a unit (0.5 ms) late for an instant. Instants 0, 41.67,
    # 83.33, 125 ms (the end, 167 ms, less the tolerance, is 4 instants): pts 42 is within it of 41.67 ms,
    # pts 84 is not of 83.33 ms (so frame 2 is never shown)
    frames = [Frame(p, 42, value=i) for i, p in enumerate((0, 42, 84, 125))]
    shown, notes = pictures_of(monkeypatch, frames, Fraction(1, 1000), 24)
    assert [(v, n) for v, _, n in shown] == [(0, 1), (1, 2), (3, 1)] and notes == []
    # a coarse time base counts frames (AVI): the tolerance stays 0.5 ms, not half its unit (1/60 s)
    frames = [Frame(p, 2, value=p) for p in (0, 2, 4, 6)]
    shown, notes = pictures_of(monkeypatch, frames, Fraction(1, 30), 20)
    assert [(v, n) for v, _, n in shown] == [(0, 2), (2, 1), (4, 1), (6, 2)] and notes == []
    # a display matrix of a quarter turn either way stands the 4 x 2 picture upright: 2 x 4
    for rotation, size in ((90, (2, 4)), (-90, (2, 4)), (180, (4, 2)), (270, (2, 4))):
        shown, _ = pictures_of(monkeypatch, [Frame(0, 30, rotation=rotation)], Fraction(1, 30), 20)
        assert shown[0][1] == size, rotation
    # 20 frames at 20 fps decode to 1 s: a container that says 2.5 s is reported, one that says 2 s is not
    frames = [Frame(p, 1) for p in range(0, 60, 3)]
    assert pictures_of(monkeypatch, frames, Fraction(1, 60), 20, declared=Fraction(5, 2))[1] == [
        "decoded 1.00 s of the 2.50 s the container declares"]
    assert pictures_of(monkeypatch, frames, Fraction(1, 60), 20, declared=Fraction(2))[1] == []


def test_flow_method_and_threads(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    threads = cv2.getNumThreads()
    try:
        video_frames.FlowEncoder("farneback", 20.0, 90, threads=1)
        assert cv2.getNumThreads() == 1  # one OpenCV thread per extraction process
    finally:
        cv2.setNumThreads(threads)
    with_contrib = SimpleNamespace(optflow=SimpleNamespace(DualTVL1OpticalFlow_create=None))
    monkeypatch.setattr(video_frames, "require", lambda name: with_contrib)
    assert video_frames.flow_method("auto") == "tvl1" and video_frames.flow_method("farneback") == "farneback"
    monkeypatch.setattr(video_frames, "require", lambda name: SimpleNamespace())  # no contrib module
    assert video_frames.flow_method("auto") == "farneback"
    with pytest.raises(ImportError, match="pip install opencv-contrib-python-headless"):
        video_frames.flow_method("tvl1")
