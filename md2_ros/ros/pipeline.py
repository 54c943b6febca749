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
from ..io.intrinsics import match_scale, projection_matrix


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

    def updated(self, values: dict) -> "Settings":
        known = {k: v for k, v in values.items() if k in self.__dataclass_fields__}
        return replace(self, **known)


@dataclass
class Prepared:
    """A decoded frame waiting for the network."""
    header: object
    rgb: np.ndarray          # at the output size, H×W×3 uint8 RGB
    in_size: tuple           # (width, height) of the received image


@dataclass
class Outputs:
    """Messages for one frame: depth always, the others when available/wanted."""
    depth: Image
    camera_info: object = None
    cloud: object = None
    colored: Image | None = None
    notes: list = field(default_factory=list)   # (key, text) warnings for the node to log, throttled


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

    # -- inputs (executor thread) ------------------------------------------------------
    def on_camera_info(self, msg) -> None:
        self._info = msg

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
        """Decode and validate ``msg`` (Image or CompressedImage); ConversionError on bad input."""
        if isinstance(msg, CompressedImage):
            rgb = cv.compressed_to_rgb(msg)
        elif isinstance(msg, Image):
            rgb = cv.image_to_rgb(msg)
        else:
            raise cv.ConversionError(f"unexpected message type {type(msg).__name__}")
        h, w = rgb.shape[:2]
        if h < 2 or w < 2:
            raise cv.ConversionError(f"image {w}x{h} is too small for the network")
        if settings.output_resolution == "model" and (h, w) != tuple(settings.model_size):
            mh, mw = settings.model_size
            rgb = cv2.resize(rgb, (mw, mh), interpolation=cv2.INTER_AREA)
        return Prepared(msg.header, rgb, (w, h))

    def _intrinsics(self, prep: Prepared, out_w: int, out_h: int):
        """(K 3×3 for the output image, CameraInfo for it) or raise ConversionError."""
        info = self._info
        if info is None:
            raise cv.ConversionError("no CameraInfo received yet")
        sx, sy = match_scale(info, prep.header.frame_id, *prep.in_size)
        sx, sy = sx * out_w / prep.in_size[0], sy * out_h / prep.in_size[1]
        return projection_matrix(info, sx, sy), cv.scaled_camera_info(info, prep.header, sx, sy, out_w, out_h)

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
