"""Which scale turns a depth model's output into metres, and applying it (node, CLI, evaluation).

Three sources, in this order of precedence:

1. ``camera_height`` > 0: the ground plane fitted in each frame (:mod:`.ground_scale`), smoothed over
   time, puts the ground at that height. It multiplies the checkpoint's depth (so it also checks a
   metric checkpoint) and replaces ``depth_scale``. Until a first frame's fit succeeds the scale is
   *unset*: a metric checkpoint then falls back to its own scale, a relative one to ``depth_scale``,
   and the report says why.
2. A metric checkpoint (``DepthModel.metric``: stereo-trained, or trained with odometry / velocity
   supervision; ``scale_source`` says which) already predicts metres; ``depth_scale`` is a factor on
   top of it (1 by default).
3. A relative (mono) checkpoint: ``depth_scale`` is the user's guess; the source is "none" unless the
   user changed it from 1, since 1 is not a scale anyone measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ground_scale import GroundParams, ScaleSmoother, estimate_ground_scale


@dataclass(frozen=True)
class ScaleReport:
    """factor: what the checkpoint's depth was multiplied by. metric: the output is in metres.
    source: camera_height | checkpoint:<how> | depth_scale | none. note: why a ground fit failed."""

    factor: float
    metric: bool
    source: str
    inlier_share: float | None = None
    note: str = ""


class MetricScaler:
    """Per-camera scale state. ``apply(depth, K)`` -> (depth in metres when possible, ScaleReport)."""

    def __init__(self, camera_height: float = 0.0, depth_scale: float = 1.0, checkpoint_metric: bool = False,
                 checkpoint_source: str = "", params: GroundParams | None = None, window: int = 15):
        self.smoother = ScaleSmoother(window)
        self.configure(camera_height, depth_scale, checkpoint_metric, checkpoint_source, params, window)

    def configure(self, camera_height: float, depth_scale: float, checkpoint_metric: bool,
                  checkpoint_source: str = "", params: GroundParams | None = None, window: int = 15) -> None:
        """Change the settings (runtime parameter changes); the smoothed ground scale is kept."""
        if camera_height < 0 or not depth_scale > 0:
            raise ValueError(f"need camera_height >= 0 and depth_scale > 0, got {camera_height}, {depth_scale}")
        self.camera_height, self.depth_scale = float(camera_height), float(depth_scale)
        self.checkpoint_metric = bool(checkpoint_metric)
        self.checkpoint_source = checkpoint_source or ("metric" if checkpoint_metric else "")
        self.params = params or GroundParams()
        self.smoother.resize(window)

    def _fallback(self, note: str = "", share: float | None = None) -> ScaleReport:
        if self.checkpoint_metric:
            return ScaleReport(self.depth_scale, True, f"checkpoint:{self.checkpoint_source}", share, note)
        if self.depth_scale != 1.0:
            return ScaleReport(self.depth_scale, True, "depth_scale", share, note)
        return ScaleReport(1.0, False, "none", share, note)

    def report(self, depth: np.ndarray, K: np.ndarray | None) -> ScaleReport:
        """Decide the factor for this frame (fitting the ground when ``camera_height`` is set)."""
        if self.camera_height <= 0:
            return self._fallback()
        if K is None:
            fit_note, share = "no intrinsics (CameraInfo) to back-project the ground band", None
            smoothed = self.smoother.value
        else:
            fit = estimate_ground_scale(depth, K, self.camera_height, self.params)
            smoothed = self.smoother.update(fit)
            fit_note, share = fit.reason, fit.inlier_share
        if smoothed is None:
            return self._fallback(f"ground scale unset: {fit_note}", share)
        return ScaleReport(smoothed, True, "camera_height", share, fit_note)

    def apply(self, depth: np.ndarray, K: np.ndarray | None) -> tuple[np.ndarray, ScaleReport]:
        rep = self.report(depth, K)
        return np.asarray(depth, dtype=np.float32) * np.float32(rep.factor), rep
