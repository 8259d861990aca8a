"""datasets/video_flow.py: flow computed while a video decodes is what ``extract_frames.py --flow`` writes
(the same JPEG bytes once encoded), and its stacks are ``CharadesFlow``'s input for the same planes; only
the flow frames some stack wants are computed, and planes nobody wants any more are let go."""
import os
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

import extract_frames as xf
import opts as options
from datasets import charadesflow
from datasets.transforms import flow_val_transform
from datasets.video_flow import FlowStacks
from utils.video_frames import jpeg, pictures

pytest.importorskip("av")
pytest.importorskip("cv2")
RATE, NPIC = 10, 7          # 10 fps: each picture shows 2 or 3 of the 24-fps output frames (stills between)
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A square of texture moving 2 px right and 1 px down per picture over a static texture."""
    import av
    from test_extract_frames import write_video
    rng = np.random.default_rng(0)
    tex = np.asarray(Image.fromarray(rng.integers(0, 256, (40, 40), np.uint8)).resize((160, 160)), np.int32)
    tex = np.clip((tex - 128) * 3 + 128, 0, 255).astype(np.uint8)
    frames = []
    for i in range(NPIC):
        img = tex[:48, :64].copy()
        img[12:36, 20:44] = tex[100 - i:124 - i, 100 - 2 * i:124 - 2 * i]
        frames.append(np.repeat(img[..., None], 3, 2))
    root = tmp_path_factory.mktemp("flowvideo")
    (root / "v").mkdir()
    write_video(av, root / "v" / "mv.mp4", "h264", RATE, frames, options={"qp": "0"})
    return root


def decoded(path, lazy=False):
    return pictures(str(path), Fraction(24), 0, 1, [], lazy=lazy)


def test_planes_are_the_extracted_flow_files(video, tmp_path):
    assert xf.main([str(video / "v"), str(tmp_path / "t"), "--flow", "--flow-method", "farneback",
                    "--workers", "1"]) == 0
    files = sorted(os.listdir(tmp_path / "t" / "mv"))
    nflow = sum(f.endswith("x.jpg") for f in files)
    assert nflow == 16   # ceil(0.7 s * 24) = 17 frames
    stacks = FlowStacks(lambda x: x, "farneback", 20.0, span=nflow)
    stacks.want([1])     # one stack over every flow frame
    got = {}
    for picture, repeats in decoded(video / "v" / "mv.mp4"):
        for k, x, y in stacks.planes_of(picture, repeats):
            got[k] = (x, y)
    assert sorted(got) == list(range(1, nflow + 1))
    assert stacks.computed == NPIC - 1   # the motion between pictures; the repeats are stills, not computed
    for k, (x, y) in got.items():
        for axis, plane in zip("xy", (x, y)):
            written = (tmp_path / "t" / "mv" / f"mv-{k:06d}{axis}.jpg").read_bytes()
            assert jpeg(Image.fromarray(plane), 90) == written, (k, axis)
    moving = [k for k, (x, _) in got.items() if np.median(x[18:30, 26:38]) > 132]
    assert 4 <= len(moving) <= NPIC - 1   # 2 px right -> ~140 where it moves, 128 between repeats


def test_stacks_are_charadesflow_inputs_of_the_same_planes(video, tmp_path):
    # the planes computed here, written losslessly (PNG data under the tree's names) as a flow tree
    all_planes = FlowStacks(lambda x: x, "farneback", 20.0, span=100)
    all_planes.want([1])
    (tmp_path / "flow" / "mv").mkdir(parents=True)
    for picture, repeats in decoded(video / "v" / "mv.mp4"):
        for k, x, y in all_planes.planes_of(picture, repeats):
            for axis, plane in zip("xy", (x, y)):
                Image.fromarray(plane).save(tmp_path / "flow" / "mv" / f"mv-{k:06d}{axis}.jpg", format="PNG")
    (tmp_path / "ann.csv").write_text(HEADER + "mv,S,R,1,1,Yes,s,o,d,c001 0.0 0.5,0.7083\n")
    o = options.parse(["--dataset", "charadesflow", "--data", str(tmp_path / "flow"), "--train-file",
                       str(tmp_path / "ann.csv"), "--val-file", str(tmp_path / "ann.csv"), "--nclass", "3",
                       "--inputsize", "24", "--test-frames", "5", "--cache-dir", str(tmp_path / "cache")])
    _, _, val_video = charadesflow.get(o)
    starts = val_video.index.frame.tolist()
    assert len(set(starts)) > 1 and max(starts) + 9 == 16   # the last stack ends at the last flow frame
    for workers, lazy in ((1, False), (2, False), (2, True)):   # one thread or two, pictures made or lazy
        stacks = FlowStacks(flow_val_transform(o), "farneback", 20.0, workers=workers)
        stacks.want(starts + [17])   # and one past the end: the last flow frame repeated
        out, held = [], 0
        for picture, repeats in decoded(video / "v" / "mv.mp4", lazy):
            out += stacks.add(picture, repeats)
            held = max(held, len(stacks.planes))
        out += stacks.finish()
        assert [s for s, _ in out] == sorted(set(starts)) + [17] and not stacks.planes and held <= 16
        got = dict(out)
        for i, start in enumerate(starts):
            torch.testing.assert_close(got[start], val_video[i][0], atol=1e-6, rtol=0)
        last = torch.cat([got[starts[-1]][-2:]] * 10)   # flow frame 16 (x, y) ten times
        torch.testing.assert_close(got[17], last, atol=0, rtol=0)


def test_only_wanted_pairs_are_computed_and_late_wants_are_refused(video):
    stacks = FlowStacks(lambda x: x, "farneback", 20.0, span=3)
    stacks.want([1])
    seen = []
    for picture, repeats in decoded(video / "v" / "mv.mp4"):
        seen += stacks.add(picture, repeats)
        if stacks.frames >= 8 and len(seen) == 1 and not stacks.pending:
            with pytest.raises(ValueError, match="past already"):
                stacks.want([4])
            stacks.want([12])
    seen += stacks.finish()
    assert [s for s, _ in seen] == [1, 12]
    assert stacks.computed <= 4   # flow frames 1..3 and 12..14: 2 of them motion, at most 2 more



def test_lazy_pictures_are_made_only_where_a_wanted_pair_starts_or_ends(video):
    """Stacks of 3 at flow frames 1 and 12 use output frames 1-4 and 12-15: at 10 fps pictures 0 and 1
    (frames 1-3, 4-5) and 4 and 5 (frames 11-12, 13-15); pictures 2, 3 and 6 are never made, and the
    stacks are those of pictures all made."""
    got, made = {}, []
    for lazy in (False, True):
        stacks = FlowStacks(lambda x: x, "farneback", 20.0, span=3)
        stacks.want([1, 12])
        out = []
        for i, (picture, repeats) in enumerate(decoded(video / "v" / "mv.mp4", lazy)):
            if lazy:
                picture = (lambda make, i: lambda: made.append(i) or make())(picture, i)
            out += stacks.add(picture, repeats)
        got[lazy] = dict(out + stacks.finish())
    assert made == [0, 1, 4, 5]
    assert sorted(got[True]) == [1, 12]
    for start in (1, 12):
        torch.testing.assert_close(got[True][start], got[False][start], atol=0, rtol=0)
