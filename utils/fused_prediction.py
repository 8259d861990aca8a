"""One video's two-stream prediction (``predict.py --flow-resume``): the RGB and the flow stream's own
predictions, fused as ``combine_rgb_flow.py`` fuses their submission files (``utils.fusion.fuse``, weights
normalised to sum to 1).

So the video's class scores are the weighted sum of each stream's video scores (each the maximum over its
own frames), not the maximum of fused frames; its 25 localisation rows are the weighted sum of each
stream's rows; its frames (the timeline, the segments, the labelled video) are the weighted sum of the
streams' k-th scored frames, at the RGB frames' times (a flow stack starts at the same frame, moved back
at the very end of a video so that its 10 pairs fit).  The JSON adds each stream's own scores.  numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from utils.fusion import DEFAULT_WEIGHTS, fuse, normalised
from utils.predictions import VideoPrediction


@dataclass
class FusedPrediction(VideoPrediction):
    """``VideoPrediction`` of fused frames whose video scores and localisation rows are fused per stream."""

    streams: dict[str, VideoPrediction] = field(default_factory=dict)
    weights: tuple[float, float] = DEFAULT_WEIGHTS

    @classmethod
    def of(cls, rgb: VideoPrediction, flow: VideoPrediction,
           weights: tuple[float, float] = DEFAULT_WEIGHTS) -> "FusedPrediction":
        """The fusion of two streams' predictions of the same video (as many scored frames each)."""
        if len(rgb.probs) != len(flow.probs):
            raise ValueError(f"{rgb.id}: {len(rgb.probs)} RGB frames but {len(flow.probs)} flow stacks")
        weights = normalised(weights)
        probs = fuse(rgb.probs, flow.probs, weights)
        return cls(rgb.id, rgb.duration, rgb.frames, rgb.times, probs, rgb.names, even=rgb.even,
                   notes=list(dict.fromkeys(rgb.notes + flow.notes)), rule=rgb.rule,
                   streams={"rgb": rgb, "flow": flow}, weights=weights)

    @property
    def scores(self) -> np.ndarray:
        """``w_rgb * max_t rgb + w_flow * max_t flow``: each stream's video scores, fused."""
        return fuse(self.streams["rgb"].scores, self.streams["flow"].scores, self.weights)

    def localization(self) -> np.ndarray:
        """(25, C): each stream's localisation rows, fused."""
        return fuse(self.streams["rgb"].localization(), self.streams["flow"].localization(), self.weights)

    def to_json(self) -> dict:
        out = super().to_json()
        out["fusion"] = {"weights": {"rgb": self.weights[0], "flow": self.weights[1]}}
        out["streams"] = {name: {"scores": [float(x) for x in p.scores],
                                 "frames": [{"frame": int(f), "scores": [float(x) for x in row]}
                                            for f, row in zip(p.frames, p.probs)]}
                          for name, p in self.streams.items()}
        return out
