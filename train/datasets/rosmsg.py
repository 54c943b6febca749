"""``sensor_msgs/msg/CameraInfo`` (as deserialised by `rosbags`) -> `CameraModel`, without ROS."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from md2_ros.sources import IMAGE_TYPES, INFO_TYPE  # one definition for the CLI and training

__all__ = ["IMAGE_TYPES", "INFO_TYPE", "CameraModel", "camera_model"]


ZERO_DISTORTION = 1e-5


@dataclass
class CameraModel:
    """Calibration from a CameraInfo message (all pixels of ``width`` x ``height``)."""

    width: int
    height: int
    K: np.ndarray            # 3x3
    P: np.ndarray            # 3x4
    R: np.ndarray            # 3x3
    D: np.ndarray            # distortion coefficients
    distortion_model: str

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size and np.abs(self.D).max() > ZERO_DISTORTION)

    @property
    def has_P(self) -> bool:
        return bool(self.P[0, 0] > 0 and self.P[1, 1] > 0)

    @property
    def is_rectified(self) -> bool:
        """Zero distortion and identity rectification rotation: images need no remapping."""
        return not self.has_distortion and bool(np.allclose(self.R, np.eye(3), atol=1e-6) or not self.R.any())

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "K": self.K.tolist(), "P": self.P.tolist(),
                "R": self.R.tolist(), "D": self.D.tolist(), "distortion_model": self.distortion_model}


def camera_model(msg, source: str = "camera_info") -> CameraModel:
    """CameraInfo -> `CameraModel`; ValueError naming ``source`` if K is unset."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{source}: CameraInfo K is not set (fx={K[0, 0]}, fy={K[1, 1]}); calibrate the camera")
    return CameraModel(int(msg.width), int(msg.height), K, np.asarray(msg.p, dtype=np.float64).reshape(3, 4),
                       np.asarray(msg.r, dtype=np.float64).reshape(3, 3), np.asarray(msg.d, dtype=np.float64),
                       str(msg.distortion_model))
