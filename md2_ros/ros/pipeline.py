"""One camera's message -> outputs path, free of rclpy Node machinery.

The node owns threads, topics and the model; this module owns what happens to a
message: decode (validated), run a ``predict_batch`` callable, and build the output
messages with the input header. Tests drive it in-process (fuzzing), the node from
its worker thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..io.stamps import stamp_ns
from . import conversions as cv
from ..core.ground_scale import GroundParams
from ..core.metric_scale import MetricScaler
from .diagnostics import CameraStats
from ..io.intrinsics import match_scale
from .rectify import Rectifier, rectified_camera_info


@dataclass(frozen=True)
class Settings:
    """Runtime parameters, swapped atomically when a parameter change is accepted."""
    depth_scale: float = 1.0
    cloud_min_range: float = 0.1
    cloud_max_range: float = 100.0
    cloud_stride: int = 1
    publish_colorized: bool = True
    colormap: str = "magma"
    output_resolution: str = "input"   # or "model"
    model_size: tuple = (192, 640)     # (height, width) of the network
    camera_height: float = 0.0         # metres above the ground; > 0 turns on the ground-plane scale
    ground_band: float = 0.6           # top of the ground band, as a fraction of the image height
    scale_window: int = 15             # frames in the median of the ground scale
    checkpoint_metric: bool = False    # the model predicts metres by itself
    checkpoint_scale_source: str = ""  # how it learnt them (stereo, odometry, ...)
    rectify: bool = True               # rectify image_raw with the CameraInfo before the network

    def updated(self, values: dict) -> "Settings":
        known = {k: v for k, v in values.items() if k in self.__dataclass_fields__}
        return replace(self, **known)


@dataclass
class Prepared:
    """A decoded (and rectified) frame waiting for the network."""
    header: object
    rgb: np.ndarray          # at the output size, H×W×3 uint8 RGB
    in_size: tuple           # (width, height) of the received image
    info: object = None      # the CameraInfo matched to this frame, or None
    scale: tuple = (1.0, 1.0)   # (sx, sy) from the CameraInfo's pixels to the received image's
    info_error: str = ""     # why no CameraInfo could be used (when info is None)
    rectified: bool = False  # remapped with the CameraInfo's D/K/R/P (identity calibrations count)


@dataclass
class Outputs:
    """Messages for one frame: depth always, the others when available/wanted."""
    depth: Image
    camera_info: object = None
    cloud: object = None
    colored: Image | None = None
    notes: list = field(default_factory=list)   # (key, text) warnings for the node to log, throttled


def same_frame(a: str, b: str) -> bool:
    """frame_ids name the same tf frame: tf2 ignores a leading '/' (ROS 1 style)."""
    return a.lstrip("/") == b.lstrip("/")


class CameraPipeline:
    """State of one camera: latest CameraInfo, last stamp, counters, and the pending-frame slot."""

    def __init__(self, name: str):
        self.name = name
        self.label = name or "camera"
        self.stats = CameraStats()
        self._info = None
        self._last_stamp_ns = None
        self._slot = None
        self._lock = threading.Lock()
        self.scaler = MetricScaler()
        self.rectifier = Rectifier()

    # -- inputs (executor thread) ------------------------------------------------------
    def on_camera_info(self, msg) -> None:
        self._info = msg

    @property
    def has_camera_info(self) -> bool:
        return self._info is not None

    def offer(self, msg) -> None:
        """Keep only the newest image; an unprocessed older one is dropped and counted."""
        with self._lock:
            stale = self._slot is not None
            self._slot = msg
        self.stats.on_received(stale)

    def take(self):
        """The pending message (or None), emptying the slot."""
        with self._lock:
            msg, self._slot = self._slot, None
        return msg

    @property
    def pending(self) -> bool:
        return self._slot is not None

    # -- processing (worker thread) --------------------------------------------------------
    def prepare(self, msg, settings: Settings) -> Prepared:
        """Decode, validate and rectify ``msg`` (Image or CompressedImage); ConversionError on a bad image.

        An unusable or missing CameraInfo does not reject the image: it is processed unrectified and
        published without cloud or depth/camera_info (``info_error`` says why).
        """
        if isinstance(msg, CompressedImage):
            rgb = cv.compressed_to_rgb(msg)
        elif isinstance(msg, Image):
            rgb = cv.image_to_rgb(msg)
        else:
            raise cv.ConversionError(f"unexpected message type {type(msg).__name__}")
        h, w = rgb.shape[:2]
        if h < 2 or w < 2:
            raise cv.ConversionError(f"image {w}x{h} is too small for the network")
        prep = Prepared(msg.header, rgb, (w, h))
        self._attach_info(prep, settings)
        if settings.output_resolution == "model" and (h, w) != tuple(settings.model_size):
            mh, mw = settings.model_size
            prep.rgb = cv2.resize(prep.rgb, (mw, mh), interpolation=cv2.INTER_AREA)
        return prep

    def _attach_info(self, prep: Prepared, settings: Settings) -> None:
        """Match the latest CameraInfo to ``prep`` and rectify its image with it when asked to."""
        info = self._info
        if info is None:
            prep.info_error = "no CameraInfo received yet"
            return
        try:
            frame = info.header.frame_id if same_frame(info.header.frame_id, prep.header.frame_id) \
                else prep.header.frame_id
            prep.scale = match_scale(info, frame, *prep.in_size)
            if settings.rectify:
                prep.rgb = self.rectifier.rectify(prep.rgb, info, *prep.scale)
                prep.rectified = True
        except cv.ConversionError as e:
            prep.info_error = str(e)
            return
        prep.info = info

    def _intrinsics(self, prep: Prepared, out_w: int, out_h: int):
        """(K 3×3 for the output image, CameraInfo describing it) or raise ConversionError."""
        if prep.info is None:
            raise cv.ConversionError(prep.info_error or "no CameraInfo")
        sx = prep.scale[0] * out_w / prep.in_size[0]
        sy = prep.scale[1] * out_h / prep.in_size[1]
        info = rectified_camera_info(prep.info, prep.header, sx, sy, out_w, out_h)
        return np.reshape(info.p, (3, 4))[:, :3], info

    def finish(self, prep: Prepared, depth: np.ndarray, settings: Settings,
               want_cloud: bool = True, want_colored: bool = True) -> Outputs:
        """Network depth (before the node's depth_scale) -> output messages with the input header."""
        notes = []
        depth = np.asarray(depth, dtype=np.float32)
        out_h, out_w = depth.shape
        try:
            K, info = self._intrinsics(prep, out_w, out_h)
            self.stats.camera_info_state = "ok"
        except cv.ConversionError as e:
            K, info = None, None
            self.stats.camera_info_state = str(e)
            notes.append(("camera_info", f"{self.label}: {e}; depth published without cloud or depth/camera_info"))
        depth = self._to_metres(depth, K, settings, notes)
        with np.errstate(invalid="ignore"):
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
        out = Outputs(depth=cv.depth_to_image(depth, prep.header), camera_info=info, notes=notes)

        stamp = stamp_ns(prep.header)
        if self._last_stamp_ns is not None and stamp < self._last_stamp_ns:
            notes.append(("stamp", f"{self.label}: image stamp went backwards by "
                                   f"{(self._last_stamp_ns - stamp) / 1e9:.3f} s (bag loop or clock reset?)"))
        self._last_stamp_ns = stamp
        if K is not None and want_cloud:
            out.cloud = cv.depth_to_cloud(depth, K, prep.header, prep.rgb, settings.cloud_stride,
                                          settings.cloud_min_range, settings.cloud_max_range)
        if settings.publish_colorized and want_colored:
            out.colored = cv.numpy_to_image(cv.colorize_depth(depth, settings.colormap), "bgr8", prep.header)
        return out

    def _to_metres(self, depth: np.ndarray, K, settings: Settings, notes: list) -> np.ndarray:
        """Apply the scale the settings choose (see :mod:`md2_ros.core.metric_scale`); record it."""
        self.scaler.configure(settings.camera_height, settings.depth_scale, settings.checkpoint_metric,
                              settings.checkpoint_scale_source, GroundParams(band=(settings.ground_band, 1.0)),
                              settings.scale_window)
        depth, rep = self.scaler.apply(depth, K)
        self.stats.on_scale(rep)
        if settings.camera_height > 0 and rep.source != "camera_height":
            notes.append(("scale", f"{self.label}: {rep.note}; publishing "
                                   f"{'the ' + rep.source + ' scale' if rep.metric else 'relative depth'}"))
        return depth


def run_batch(items: list, predict_batch, settings: Settings) -> list:
    """Predict depth for [(camera, Prepared)], grouping same-size images into one batch.

    Returns depths (H×W float32, before the node's depth_scale) in the order of ``items``.
    """
    depths = [None] * len(items)
    groups: dict[tuple, list[int]] = {}
    for i, (_, prep) in enumerate(items):
        groups.setdefault(prep.rgb.shape, []).append(i)
    for idx in groups.values():
        for i, d in zip(idx, predict_batch([items[i][1].rgb for i in idx])):
            depths[i] = d
    return depths
