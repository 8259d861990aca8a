"""datasets/video_input.py without a model: which inputs are found, which frames are scored."""
import numpy as np
import pytest

from datasets.frame_index import val_video_frames
from datasets.video_input import FRAMES, VIDEO, InputError, find_inputs, frame_times, sample_windows


def fake_find_videos(root, extensions):
    import os
    return {os.path.splitext(f)[0]: os.path.join(root, f) for f in sorted(os.listdir(root)) if f.endswith(".mp4")}


def test_inputs_in_order_frame_folders_and_ids(tmp_path):
    (tmp_path / "in" / "F1").mkdir(parents=True)
    (tmp_path / "in" / "F1" / "F1-000001.jpg").write_bytes(b"x")
    (tmp_path / "in" / "empty").mkdir()  # a folder without its frames is no frame folder
    (tmp_path / "in" / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.mp4").write_bytes(b"x")
    clips = find_inputs([str(tmp_path / "a.mp4"), str(tmp_path / "in")], "mp4", fake_find_videos)
    assert [(c.id, c.kind) for c in clips] == [("a", VIDEO), ("F1", FRAMES), ("b", VIDEO)]
    assert clips[1].frame_path(12).endswith("F1/F1-000012.jpg")
    (tmp_path / "in" / "a.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="two inputs have the id 'a'"):
        find_inputs([str(tmp_path / "a.mp4"), str(tmp_path / "in")], "mp4", fake_find_videos)
    with pytest.raises(InputError, match="input not found: .*nowhere"):
        find_inputs([str(tmp_path / "nowhere")], "mp4", fake_find_videos)


def test_frames_scored():
    # default: val_video's 50 frames of a 10-s video of 240 frames, one window
    (window,) = sample_windows(240, 10.0)
    assert window.tolist() == (val_video_frames(240, 10.0, 50, 24, "time")).tolist() == [
        int(k * 4.8 + 1e-6) + 1 for k in range(50)]
    assert sample_windows(240, 10.0, frames=7)[0].tolist() == [int(k * 240 / 7 + 1e-6) + 1 for k in range(7)]
    # --fps 3 over 40.5 s: j / 3 s for j = 0..121 -> frame 8j + 1, in windows of 50, 50, 22; clamped to 972
    windows = sample_windows(972, 40.5, fps=3)
    assert [len(w) for w in windows] == [50, 50, 22]
    assert np.concatenate(windows).tolist() == [8 * j + 1 for j in range(122)]
    assert frame_times(np.array([1, 25, 49])).tolist() == [0.0, 1.0, 2.0]
    # a video shorter than one sampling step still gets its first frame
    assert [w.tolist() for w in sample_windows(3, 0.1, fps=2)] == [[1]]
