"""The demo dataset: synthetic frames, in the exact Charades format, for real Charades annotations.

Not a dataset loader (the demo trees are read by ``charadesrgb`` / ``charadesflow`` like real Charades);
this package only makes them:

- ``codes.py``: how each class looks (its RGB texture and flow pattern; fixed) and the frame-count rules;
- ``scene.py``: one video's scene (background, distractors, noise: random from ``(seed, id)``) and its
  frames as arrays (``render_frames``, ``render_flow``);
- ``tree.py``: the frame trees on disk and their manifest (``ensure_demo_data``; ``python -m datasets.demo``);
- ``selection.py``: how the shipped demo CSVs were chosen from Charades (``python -m datasets.demo.selection``).
"""
from datasets.demo.codes import (CLASS_CODES, active_classes, class_pattern, flow_count, flow_pattern, frame_count,
                                 frame_time)
from datasets.demo.scene import render_flow, render_frames
from datasets.demo.tree import DEMO_TEST_CSV, DEMO_TRAIN_CSV, REPO_ROOT, ensure_demo_data, render_video

__all__ = ["CLASS_CODES", "DEMO_TEST_CSV", "DEMO_TRAIN_CSV", "REPO_ROOT", "active_classes", "class_pattern",
           "ensure_demo_data", "flow_count", "flow_pattern", "frame_count", "frame_time", "render_flow",
           "render_frames", "render_video"]
