"""Per-camera counters and their diagnostic_msgs/DiagnosticStatus."""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class CameraStats:
    """Thread-safe counters for one camera; ``window()`` reports rates since the last call.

    received: messages that reached the callback; dropped: replaced before the worker took
    them (stale); rejected: failed conversion/validation; processed: depth published.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.received = self.dropped = self.rejected = self.processed = 0
        self.last_error = ""
        self.camera_info_state = "none received"
        self.scale = None            # the last frame's ScaleReport (md2_ros.core.metric_scale)
        self._win_start = clock()
        self._win_received = self._win_processed = self._win_rejected = 0
        self._win_infer_ms: list[float] = []
        self._win_total_ms: list[float] = []

    def on_received(self, replaced_stale: bool) -> None:
        with self._lock:
            self.received += 1
            self._win_received += 1
            self.dropped += int(replaced_stale)

    def on_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self._win_rejected += 1
            self.last_error = reason

    def on_processed(self, infer_ms: float, total_ms: float) -> None:
        with self._lock:
            self.processed += 1
            self._win_processed += 1
            self._win_infer_ms.append(infer_ms)
            self._win_total_ms.append(total_ms)

    def on_scale(self, report) -> None:
        with self._lock:
            self.scale = report

    def window(self) -> dict:
        """Rates and means since the previous call (then reset the window)."""
        with self._lock:
            now = self._clock()
            dt = max(now - self._win_start, 1e-9)
            mean = (lambda xs: sum(xs) / len(xs) if xs else float("nan"))
            out = {
                "input_rate_hz": self._win_received / dt, "output_rate_hz": self._win_processed / dt,
                "inference_ms": mean(self._win_infer_ms), "processing_ms": mean(self._win_total_ms),
                "rejected_in_window": self._win_rejected, "received": self.received, "processed": self.processed,
                "dropped_stale": self.dropped, "rejected": self.rejected, "last_error": self.last_error,
                "camera_info": self.camera_info_state, **scale_fields(self.scale),
            }
            self._win_start = now
            self._win_received = self._win_processed = self._win_rejected = 0
            self._win_infer_ms, self._win_total_ms = [], []
            return out


def scale_fields(rep) -> dict:
    """Diagnostic values of a ScaleReport (or of none yet)."""
    if rep is None:
        return {"scale": "unset", "scale_source": "none", "metric": False, "ground_inlier_share": "n/a",
                "scale_note": "no frame processed yet"}
    share = "n/a" if rep.inlier_share is None else round(float(rep.inlier_share), 3)
    return {"scale": round(float(rep.factor), 4), "scale_source": rep.source, "metric": bool(rep.metric),
            "ground_inlier_share": share, "scale_note": rep.note}


def to_status(name: str, hardware_id: str, w: dict, lifecycle_state: str = "active") -> DiagnosticStatus:
    """DiagnosticStatus from a ``CameraStats.window()`` dict and the node's lifecycle state.

    Not active (unconfigured/inactive/finalized): OK, "<state>: not processing images" (deliberate,
    not a fault; monitoring sees the state). Active: STALE with no input in the window; WARN with bad
    messages in the window, no usable CameraInfo (cloud and depth/camera_info skipped), or a camera-height
    scale asked for but unset; OK otherwise. The values always include the scale, its source and the
    ground fit's inlier share.
    """
    w = {"lifecycle_state": lifecycle_state, **w}
    if lifecycle_state != "active":
        level, message = DiagnosticStatus.OK, f"{lifecycle_state} (lifecycle): not processing images"
    elif w["input_rate_hz"] == 0:
        level, message = DiagnosticStatus.STALE, "no input images"
    elif w["rejected_in_window"]:
        level, message = DiagnosticStatus.WARN, f"rejected {w['rejected_in_window']} message(s): {w['last_error']}"
    elif w["camera_info"] != "ok":
        level, message = DiagnosticStatus.WARN, f"no usable CameraInfo ({w['camera_info']}): cloud skipped"
    elif w.get("scale_note", "").startswith("ground scale unset"):
        level, message = DiagnosticStatus.WARN, f"{w['scale_note']} (publishing scale source: {w['scale_source']})"
    else:
        level, message = DiagnosticStatus.OK, "ok"

    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    values = [KeyValue(key=k, value=fmt(v)) for k, v in w.items()]
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
