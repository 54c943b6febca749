"""Camera intrinsics from the outside world: CameraInfo messages, YAML files (plain or ROS
camera_calibration), four numbers; one scaling rule and one distortion rule.

* **Scaling** (`scale_intrinsics`): intrinsics for a ``(w0, h0)`` image describe a ``(w1, h1)`` resize of
  it after multiplying row 0 by ``w1/w0`` and row 1 by ``h1/h0`` (the image_proc resize convention). A
  *normalised* K (Monodepth2's: fractions of the size) is simply K for a 1×1 image, so normalising is
  ``scale_intrinsics(K, (w, h), (1, 1))``; ``md2_ros.core.geometry.scale_intrinsics`` is the core's
  normalised -> pixels step of the same rule.
* **Distortion** (`has_distortion`): coefficients count as distortion when any exceeds
  ``ZERO_DISTORTION`` in magnitude. Distorted images must be rectified before a pinhole model is used.
* **Validity**: K must be finite with fx, fy > 0. A CameraInfo that is present but invalid (NaN K, fx = 0)
  raises `InvalidIntrinsics` naming the cause; callers report it as *invalid*, never as missing.

The node's CameraInfo rules (binning, ROI, matching an image by frame_id and size) are here too, working on
any object with CameraInfo's fields (rclpy or rosbags); building CameraInfo messages is the node's job.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .errors import FormatError

__all__ = ["ZERO_DISTORTION", "ASPECT_TOLERANCE", "InvalidIntrinsics", "scale_intrinsics", "normalise_intrinsics",
           "has_distortion", "check_intrinsics", "intrinsics_from_values", "load_intrinsics_file",
           "read_yaml_mapping", "CameraModel", "camera_model", "camera_info_K", "info_size", "check_camera_info",
           "binned_matrices", "match_scale", "projection_matrix"]

ZERO_DISTORTION = 1e-5
ASPECT_TOLERANCE = 0.01


class InvalidIntrinsics(FormatError):
    """Intrinsics that exist but cannot be used (non-finite, fx or fy <= 0, bad size, ...)."""


def scale_intrinsics(K, from_size: tuple, to_size: tuple) -> np.ndarray:
    """THE scaling rule: K (3×3, 3×4 P or 4×4) for a ``from_size`` = (width, height) image -> K for the same
    view resized to ``to_size``: row 0 × to_w/from_w, row 1 × to_h/from_h. Returns a float64 copy."""
    K = np.array(K, dtype=np.float64, copy=True)
    if K.ndim != 2 or K.shape[0] < 3 or K.shape[1] < 3:
        raise InvalidIntrinsics(f"intrinsics must be 3×3, 3×4 or 4×4, got {K.shape}")
    if not (min(from_size) > 0 and min(to_size) >= 0):
        raise InvalidIntrinsics(f"image sizes must be positive, got {tuple(from_size)} -> {tuple(to_size)}")
    K[0] *= to_size[0] / from_size[0]
    K[1] *= to_size[1] / from_size[1]
    return K


def normalise_intrinsics(K_pix, width: int, height: int) -> np.ndarray:
    """3×3 or 4×4 pixel K of a width×height image -> 4×4 normalised K (K of a 1×1 image), as training uses."""
    K = np.eye(4)
    K[:3, :3] = np.asarray(K_pix, dtype=np.float64)[:3, :3]
    return scale_intrinsics(K, (width, height), (1, 1))


def has_distortion(D) -> bool:
    """THE distortion rule: any coefficient with magnitude above ZERO_DISTORTION."""
    D = np.asarray(D if D is not None else [], dtype=np.float64).reshape(-1)
    return bool(D.size and np.abs(D).max() > ZERO_DISTORTION)


def check_intrinsics(K, source: str = "intrinsics") -> np.ndarray:
    """Validate 3×3 pixel intrinsics (finite, fx, fy > 0); returns them as float64; InvalidIntrinsics if not."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise InvalidIntrinsics(f"{source}: intrinsics must be 3×3, got {K.shape}")
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise InvalidIntrinsics(f"{source}: invalid intrinsics fx={K[0, 0]}, fy={K[1, 1]}, cx={K[0, 2]}, "
                                f"cy={K[1, 2]} (need finite numbers and fx, fy > 0)")
    return K


def intrinsics_from_values(fx, fy, cx, cy) -> np.ndarray:
    """3×3 K from four numbers (all required)."""
    vals = [fx, fy, cx, cy]
    if any(v is None for v in vals):
        raise ValueError("--fx, --fy, --cx and --cy must be given together")
    if not all(math.isfinite(v) for v in vals):
        raise InvalidIntrinsics(f"intrinsics must be finite, got {vals}")
    return check_intrinsics([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def read_yaml_mapping(path, what: str, expected: str, missing_error=FileNotFoundError) -> dict:
    """Load a YAML file that must hold a mapping; errors name the file and say what was expected."""
    path = Path(path)
    if not path.is_file():
        raise missing_error(f"{what} not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise ValueError(f"{path}: expected a mapping with {expected}")
    return doc


def _number(doc: dict, key: str, path) -> float:
    if key not in doc:
        raise ValueError(f"{path}: missing '{key}' (need fx, fy, cx, cy)")
    try:
        return float(doc[key])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{key}' is not a number: {doc[key]!r}") from None


def _calibration_yaml(doc: dict, path) -> tuple[np.ndarray, tuple | None]:
    data = np.asarray((doc["camera_matrix"] or {}).get("data", []), dtype=np.float64)
    if data.size != 9:
        raise ValueError(f"{path}: camera_matrix.data must have 9 numbers, has {data.size}")
    dist = (doc.get("distortion_coefficients") or {}).get("data", []) or []
    if has_distortion(dist):
        raise ValueError(f"{path}: distortion coefficients {list(dist)} are not zero; undistort the images first "
                         "(cv2.undistort, or the node's rectify) and give the new camera matrix with zero distortion")
    w, h = doc.get("image_width"), doc.get("image_height")
    return data.reshape(3, 3), ((int(w), int(h)) if w and h else None)


def _plain_yaml(doc: dict, path) -> tuple[np.ndarray, tuple | None]:
    fx, fy, cx, cy = (_number(doc, k, path) for k in ("fx", "fy", "cx", "cy"))
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    if doc.get("normalised") or doc.get("normalized"):
        return K, (1, 1)
    if "width" in doc or "height" in doc:
        return K, (int(_number(doc, "width", path)), int(_number(doc, "height", path)))
    if fx < 4 and fy < 4 and 0 <= cx <= 1 and 0 <= cy <= 1:
        raise ValueError(f"{path}: fx={fx} fy={fy} cx={cx} cy={cy} look normalised; add 'normalised: true'")
    return K, None


def load_intrinsics_file(path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """THE intrinsics YAML reader -> (3×3 K, (width, height) it refers to, or None if the file does not say).

    Forms: ``fx, fy, cx, cy`` in pixels (optional ``width``, ``height``), the same as fractions of the size
    with ``normalised: true`` (size (1, 1)), or a ROS ``camera_calibration`` file (``camera_matrix.data``,
    ``image_width``, ``image_height``, ``distortion_coefficients``: must be zero, see `has_distortion`).
    """
    doc = read_yaml_mapping(path, "intrinsics file", "fx, fy, cx, cy (or camera_matrix)")
    try:
        K, size = _calibration_yaml(doc, path) if isinstance(doc.get("camera_matrix"), dict) else _plain_yaml(doc, path)
    except TypeError as exc:
        raise ValueError(f"{path}: bad intrinsics ({exc})") from None
    if size is not None and (size[0] <= 0 or size[1] <= 0):
        raise InvalidIntrinsics(f"{path}: width and height must be positive, got {size}")
    return check_intrinsics(K, str(path)), size


# ----------------------------------------------------------------------------------------- CameraInfo
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
        return has_distortion(self.D)

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
    """CameraInfo -> `CameraModel`; InvalidIntrinsics naming ``source`` if K is unset or not finite."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InvalidIntrinsics(f"{source}: CameraInfo K is invalid (fx={K[0, 0]}, fy={K[1, 1]}; all zero = "
                                "uncalibrated camera); calibrate the camera")
    return CameraModel(int(msg.width), int(msg.height), K, np.asarray(msg.p, dtype=np.float64).reshape(3, 4),
                       np.asarray(msg.r, dtype=np.float64).reshape(3, 3), np.asarray(msg.d, dtype=np.float64),
                       str(msg.distortion_model))


def camera_info_K(info, width: int, height: int, source: str = "camera_info") -> np.ndarray:
    """3×3 pixel intrinsics of a CameraInfo for a width×height image: K, or P[:, :3] when K is all zero,
    scaled from the CameraInfo's size. InvalidIntrinsics (naming ``source``) when neither is usable."""
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    P = np.asarray(info.p, dtype=np.float64).reshape(3, 4)[:, :3]
    if not K.any() and np.isfinite(P).all() and P[0, 0] > 0 and P[1, 1] > 0:
        K = P
    K = check_intrinsics(K, f"{source}: CameraInfo")
    if info.width > 0 and info.height > 0 and (info.width, info.height) != (width, height):
        K = scale_intrinsics(K, (info.width, info.height), (width, height))
    return K


def info_size(info) -> tuple[int, int]:
    """Effective (width, height) of a CameraInfo after binning."""
    bx, by = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    return int(info.width) // bx, int(info.height) // by


def check_camera_info(info) -> None:
    """Raise InvalidIntrinsics naming the problem if ``info`` cannot be used: K not 9 finite numbers or
    fx, fy <= 0, zero size, a partial ROI, P not 12 finite numbers."""
    K = np.asarray(info.k, dtype=np.float64)
    if K.shape != (9,) or not np.isfinite(K).all():
        raise InvalidIntrinsics("CameraInfo K is not 9 finite numbers")
    if not (K[0] > 0 and K[4] > 0):
        raise InvalidIntrinsics(f"CameraInfo K has fx={K[0]}, fy={K[4]} (K all zero = uncalibrated camera)")
    w, h = info_size(info)
    if w <= 0 or h <= 0:
        raise InvalidIntrinsics(f"CameraInfo has zero size {w}x{h}")
    roi = info.roi
    if int(roi.width) or int(roi.height):
        roi_box = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        if roi_box != (0, 0, int(info.width), int(info.height)):
            raise InvalidIntrinsics("CameraInfo with a region of interest is not supported")
    P = np.asarray(info.p, dtype=np.float64)
    if P.shape != (12,) or not np.isfinite(P).all():
        raise InvalidIntrinsics("CameraInfo P is not 12 finite numbers")


def binned_matrices(info) -> tuple[np.ndarray, np.ndarray]:
    """(K 3×3, P 3×4) of a CameraInfo in pixels of its binned image (binning b: a b×b-pixel image is 1×1)."""
    b = (max(int(info.binning_x), 1), max(int(info.binning_y), 1))
    return (scale_intrinsics(np.reshape(info.k, (3, 3)), b, (1, 1)),
            scale_intrinsics(np.reshape(info.p, (3, 4)), b, (1, 1)))


def match_scale(info, frame_id: str, width: int, height: int) -> tuple[float, float]:
    """(sx, sy) mapping ``info`` pixels to a ``width``×``height`` image with ``frame_id``: equal frame_id and
    size, or a same-aspect resize (within ASPECT_TOLERANCE). InvalidIntrinsics when ``info`` is unusable or
    does not describe that image."""
    check_camera_info(info)
    if info.header.frame_id != frame_id:
        raise InvalidIntrinsics(f"CameraInfo frame_id {info.header.frame_id!r} != image frame_id {frame_id!r}")
    w, h = info_size(info)
    if (w, h) == (width, height):
        return 1.0, 1.0
    sx, sy = width / w, height / h
    if abs(sx - sy) > ASPECT_TOLERANCE * max(sx, sy):
        raise InvalidIntrinsics(f"CameraInfo size {w}x{h} does not match image {width}x{height} "
                                "(not a same-aspect resize)")
    return sx, sy


def projection_matrix(info, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    """3×3 pixel intrinsics for back-projection: P[:, :3] if P is set, else K; binned, then scaled by (sx, sy)
    (the rectified projection is the matrix of the rectified image a depth network normally sees)."""
    K, P = binned_matrices(info)
    M = P[:, :3] if P[0, 0] > 0 and P[1, 1] > 0 else K
    return scale_intrinsics(M, (1, 1), (sx, sy))
