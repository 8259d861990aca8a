"""utils/fusion.py: the weighted sum of two streams' rows, by hand, and the very numbers combine_rgb_flow.py
writes for the same rows."""
import numpy as np
import pytest

from combine_rgb_flow import combine
from utils.fusion import FusionError, WeightsError, fuse, normalised
from utils.submission import read_submission, write_classification, write_localization


def test_fuse_by_hand():
    rgb, flow = np.array([[1.0, 2.0, -1.0]]), np.array([[3.0, 0.0, 1.0]])
    np.testing.assert_array_equal(fuse(rgb, flow), [[2.0, 1.0, 0.0]])
    np.testing.assert_allclose(fuse(rgb, flow, (1, 3)), [[2.5, 0.5, 0.5]])   # 0.25 / 0.75
    assert normalised((2, 6)) == (0.25, 0.75)
    with pytest.raises(WeightsError, match="sum to 0"):
        fuse(rgb, flow, (0, 0))
    with pytest.raises(WeightsError, match="each weight must be a finite number >= 0"):
        fuse(rgb, flow, (1, -1))   # a negative weight would rank a stream upside down
    with pytest.raises(WeightsError, match="sum to inf"):
        normalised((1e308, 1e308))
    with pytest.raises(FusionError, match="shapes"):
        fuse(rgb, flow[:, :2])


def test_infinities_and_zero_weights():
    rgb, flow = np.array([[np.inf, 0.0], [1.0, 2.0]]), np.array([[1.0, 5.0], [-np.inf, 2.0]])
    np.testing.assert_array_equal(fuse(rgb, flow), [[np.inf, 2.5], [-np.inf, 2.0]])
    np.testing.assert_array_equal(fuse(rgb, flow, (1, 0)), rgb)   # not 0 * inf = nan
    clash = r"key b, class 1: .*RGB score \(r.pth\) is inf .*flow score \(f.pth\) is -inf"
    with pytest.raises(FusionError, match=clash):
        fuse([[0, 0], [0, np.inf]], [[0, 0], [0, -np.inf]], keys=["a", "b"], sources=("r.pth", "f.pth"))
    rgb3, flow3 = np.zeros((2, 3, 4)), np.zeros((2, 3, 4))   # localisation rows: video x frame x class
    rgb3[1, 0, 2], flow3[1, 0, 2] = np.inf, -np.inf
    with pytest.raises(FusionError, match=r"key row 1, class 2: .* \(1 such score"):
        fuse(rgb3, flow3)   # the class is the last index, not the frame's
    with pytest.raises(FusionError, match=r"key row 0, class 1: "):
        fuse(np.array([0.0, np.inf]), np.array([0.0, -np.inf]))   # one video's scores: row 0


def test_per_video_fusion_equals_combine_rgb_flow_of_the_files(tmp_path):
    rng = np.random.default_rng(0)
    ids, C = ["V1", "V2"], 4
    video = rng.random((2, 2, C))            # stream x video x class
    local = rng.random((2, 2, 25, C))        # stream x video x frame x class
    for s, name in enumerate(("rgb", "flow")):
        write_classification(str(tmp_path / f"{name}.txt"), ids, video[s])
        write_localization(str(tmp_path / f"{name}_loc.txt"), ids, local[s])
    for kind, rows in (("", video), ("_loc", local)):
        combine(str(tmp_path / f"rgb{kind}.txt"), str(tmp_path / f"flow{kind}.txt"), str(tmp_path / f"f{kind}.txt"),
                (0.3, 0.6), C)
        written = read_submission(str(tmp_path / f"f{kind}.txt"), C).scores
        # from the streams' own rows, before any file: the file's numbers (as written, %g) to 1e-5
        np.testing.assert_allclose(fuse(rows[0], rows[1], (0.3, 0.6)).reshape(written.shape), written, atol=1e-5)
        # and the same rows read back from the streams' files fuse to exactly the file's numbers' source
        back = [read_submission(str(tmp_path / f"{n}{kind}.txt"), C).scores for n in ("rgb", "flow")]
        np.testing.assert_allclose(fuse(*back, (0.3, 0.6)), written, atol=1e-6)
