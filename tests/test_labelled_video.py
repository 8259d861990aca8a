"""utils/labelled_video.py (+ utils/overlay.py): the labelled video decodes with the input's frame count, size,
timestamps and duration, keeps its audio (copied bit for bit, or re-encoded to AAC), shows each scored
frame's labels from its time to the next one, turns a phone video upright as the frame rule does, and
is written atomically; a live writer holds frames until the scores that label them are in."""
import struct
from fractions import Fraction

import numpy as np
import pytest

from utils.labelled_video import LabelledVideoWriter, label_video
from utils.overlay import margin, render_panel, top_actions
from utils.video_frames import pictures

av = pytest.importorskip("av")
W, H, RATE, N = 160, 96, 12, 30          # 2.5 s
NAMES = ["Walking", "Sitting in a chair", "Opening a door"]


def source(path, *, audio: str | None = "aac", size=(W, H), frames=N, container=None, pts=None, pix_fmt="yuv420p"):
    """A grey video with a bright top-right quarter (to find the orientation) and a bottom-left one that
    brightens every frame, and a 440 Hz tone as its audio."""
    with av.open(str(path), "w", format=container) as c:
        v = c.add_stream("libx264", rate=RATE, options={"g": "6"})
        v.width, v.height, v.pix_fmt = *size, pix_fmt
        a = c.add_stream(audio, rate=48000) if audio else None
        for i in range(frames):
            img = np.full((size[1], size[0], 3), 100, np.uint8)
            img[: size[1] // 2, size[0] // 2:] = 230   # a bright quarter, to find the orientation
            img[size[1] // 2:, : size[0] // 2] = 60 + 5 * i   # and one that changes
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i if pts is None else pts[i]
            c.mux(v.encode(f))
        c.mux(v.encode())
        if a is not None:
            n = 48000 * frames // RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            step = a.codec_context.frame_size or 1024
            for k in range(0, n, step):
                fr = av.AudioFrame.from_ndarray(np.stack([tone[k:k + step]] * 2), format="fltp", layout="stereo")
                fr.sample_rate, fr.pts = 48000, k
                c.mux(a.encode(fr))
            c.mux(a.encode())
    return str(path)


def probe(path):
    """(frames, (w, h), pts in seconds, video end, audio codec and seconds of it) of a file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        times = [float(f.pts * f.time_base) for f in frames]
        last = frames[-1]   # the end of the last frame (a Matroska stream has no duration of its own)
        end = float((last.pts + last.duration) * last.time_base)
        if v.duration:
            assert float(v.duration * v.time_base) == pytest.approx(end, abs=1e-3)
    with av.open(str(path)) as c:
        audio = None
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(a))
            audio = (a.codec_context.name, samples / a.codec_context.sample_rate)
    return frames, (frames[0].width, frames[0].height), times, end, audio


def scores_for(*winners):
    s = np.full((len(winners), len(NAMES)), 0.1)
    for i, c in enumerate(winners):
        s[i, c] = 0.9
    return s


def panel_region(frame) -> np.ndarray:
    y = frame.to_ndarray(format="gray").astype(np.float32)
    m = margin(frame.height)
    return y[m:m + 20, m:frame.width - m]   # the first line of the panel: bar, score, name


def test_frames_size_duration_and_copied_audio(tmp_path):
    src = source(tmp_path / "in.mp4")
    out = tmp_path / "labelled.mp4"
    assert label_video(src, str(out), [0.0, 1.0], scores_for(0, 1), NAMES) == N
    frames, size, times, end, audio = probe(out)
    frames_in, size_in, times_in, end_in, audio_in = probe(src)
    assert len(frames) == len(frames_in) == N and size == size_in == (W, H)
    assert times == pytest.approx(times_in, abs=1e-6) and end == pytest.approx(end_in, abs=1e-6)
    assert audio[0] == "aac" and audio == pytest.approx(audio_in)
    with av.open(src) as a, av.open(str(out)) as b:   # copied: the same packets, byte for byte
        assert [bytes(p) for p in a.demux(audio=0)] == [bytes(p) for p in b.demux(audio=0)]
    assert [f.format.name for f in frames[:1]] == ["yuv420p"]
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    # MP4 with its index first (faststart): 'moov' before 'mdat'
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_labels_change_only_at_scored_frames(tmp_path):
    src = source(tmp_path / "in.mp4", audio=None)
    out = tmp_path / "labelled.mp4"
    # scored at 0.5 s (class 0) and 1.5 s (class 2): frames 0-5 bare, 6-17 one panel, 18-29 another
    label_video(src, str(out), [0.5, 1.5], scores_for(0, 2), NAMES)
    frames, *_ = probe(out)
    bare = [panel_region(f) for f in probe(src)[0]]
    regions = [panel_region(f) for f in frames]
    dark = [float((b - r).mean()) for b, r in zip(bare, regions)]
    assert max(dark[:6]) < 3 and min(dark[6:]) > 10        # the panel's box darkens its corner
    # between scored frames the panel holds; at 1.5 s another name
    change = [float(np.abs(np.diff([regions[i], regions[i + 1]], axis=0)).mean()) for i in range(N - 1)]
    held = [c for i, c in enumerate(change) if i not in (5, 17)]
    assert change[17] > 4 * max(held)


def test_panel_by_hand():
    assert top_actions(np.array([0.2, 0.9, 0.2, 0.5]), "abcd", 3) == [("b", 0.9), ("d", 0.5), ("a", 0.2)]
    img = render_panel([("Walking", 1.0), ("A very long action name that cannot fit " * 3, 0.0)], 320, 240)
    assert img.shape[0] % 2 == 0 and img.shape[1] % 2 == 0 and img.shape[1] <= 320 - 2 * margin(240)
    assert img.shape[2] == 4 and 100 < img[..., 3].mean() < 255   # translucent box, opaque text and bars


def test_a_narrow_frame_keeps_the_scores_whole():
    """On a 72-px-wide phone video the bar gives way and the names are cut, never the score: the score of
    each line is drawn as it is drawn alone, inside the box."""
    entries = [("Holding a phone/camera", 0.91), ("Sitting in a chair", 0.35)]
    img = render_panel(entries, 72, 88)
    assert img.shape[1] <= 72 - 2 * margin(88) and not (img[..., :3] == (255, 176, 0)).all(-1).any()  # no bar
    wide = render_panel(entries, 640, 480)
    assert (wide[..., :3] == (255, 176, 0)).all(-1).any()   # a frame wide enough has its bars
    from utils.overlay import _font
    from PIL import Image, ImageDraw
    size = max(11, round(88 / 26))
    pad, line, score_w = max(2, size // 2), round(size * 1.5), round(size * 2.6)
    for i, (_, score) in enumerate(entries):
        alone = Image.new("RGBA", (score_w, line), (0, 0, 0, 170))
        ImageDraw.Draw(alone).text((0, line / 2), f"{score:.2f}", font=_font(size), fill=(255, 255, 255, 255),
                                   anchor="lm")
        top = pad + i * line
        np.testing.assert_array_equal(img[top:top + line, pad:pad + score_w], np.asarray(alone))


def test_other_audio_is_reencoded_and_odd_sizes_are_made_even(tmp_path):
    src = source(tmp_path / "in.mkv", audio="libopus", size=(W + 1, H + 1), pix_fmt="yuv444p")
    out = tmp_path / "labelled.mp4"
    label_video(src, str(out), [0.0], scores_for(1), NAMES)
    frames, size, times, end, audio = probe(out)
    _, _, times_in, end_in, audio_in = probe(src)
    assert size == (W, H) and len(frames) == N and times == pytest.approx(times_in, abs=1e-3)
    assert audio_in[0] == "opus" and audio[0] == "aac" and audio[1] == pytest.approx(audio_in[1], abs=0.05)


def test_a_phone_video_is_written_upright(tmp_path):
    path = tmp_path / "phone.mp4"
    source(path, audio=None)
    data = bytearray(path.read_bytes())   # the track header's matrix: 90 degrees clockwise, as a phone writes
    at = data.index(b"tkhd") + 4 + 40
    data[at:at + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    out = tmp_path / "labelled.mp4"
    label_video(str(path), str(out), [], np.zeros((0, 3)), NAMES)   # no scores: no panel
    frames, size, *_ = probe(out)
    assert size == (H, W)
    upright = np.asarray(next(pictures(str(path), Fraction(RATE), 0, 1, []))[0].convert("L"), np.float32)
    assert np.abs(frames[0].to_ndarray(format="gray").astype(np.float32) - upright).mean() < 3


def test_live_writer_holds_frames_until_their_scores(tmp_path):
    src = source(tmp_path / "in.mp4", audio=None)
    out = tmp_path / "live.mp4"
    with av.open(src) as c, LabelledVideoWriter.for_stream(str(out), NAMES, c.streams.video[0]) as writer:
        frames = list(c.decode(video=0))
        for f in frames[:10]:
            writer.add_frame(f)
        assert writer.frames == 0                     # nothing is labelled yet
        writer.add_scores(0.0, scores_for(0)[0])
        assert writer.frames == 0                     # a later score could still come before them
        writer.add_scores(0.5, scores_for(1)[0])      # frames at t < 0.5 s: labelled by t = 0
        assert writer.frames == 6
        for f in frames[10:]:
            writer.add_frame(f)
    assert writer.frames == N and len(probe(out)[0]) == N


def test_written_atomically(tmp_path):
    src = source(tmp_path / "in.mp4", audio=None)
    out = tmp_path / "labelled.mp4"
    out.write_bytes(b"the previous file")
    with pytest.raises(RuntimeError, match="stop"), av.open(src) as c:
        with LabelledVideoWriter.for_stream(str(out), NAMES, c.streams.video[0]) as writer:
            writer.no_more_scores()
            for i, f in enumerate(c.decode(video=0)):
                writer.add_frame(f)
                if i == 5:
                    raise RuntimeError("stop")
    assert out.read_bytes() == b"the previous file" and sorted(p.name for p in tmp_path.iterdir()) == [
        "in.mp4", "labelled.mp4"]
