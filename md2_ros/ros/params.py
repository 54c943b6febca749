"""Depth node parameters: one table of (default, description, limits), declaration with
descriptors, and a pure validator used both at start-up and for runtime changes."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .conversions import COLORMAPS

# the names of md2_ros.core.backends.NAMES, spelled out so that validating parameters needs no torch import
BACKENDS = ("auto", "eager", "bf16", "fp16", "onnxruntime", "torchscript", "int8", "tensorrt", "compile")


@dataclass(frozen=True)
class Spec:
    default: object
    description: str
    read_only: bool = False
    int_range: tuple | None = None      # (from, to) for IntegerRange
    float_range: tuple | None = None    # (from, to) for FloatingPointRange


SPECS: dict[str, Spec] = {
    "model_path": Spec("", "Checkpoint (.safetensors from md2_ros, or an official Monodepth2 folder)", True),
    "device": Spec("auto", "auto | cpu | cuda | cuda:N", True),
    "fp16": Spec(False, "Half-precision inference (CUDA only; ignored with a warning on CPU)", True),
    "backend": Spec("auto", "Inference backend: auto (fastest that matches eager fp32 on this device, chosen at "
                            "configure) or eager | bf16 | fp16 | onnxruntime | torchscript | int8 | tensorrt | "
                            "compile", True),
    "backend_budget_s": Spec(60.0, "auto: seconds allowed for building and checking candidates at configure "
                                   "(a candidate that would overrun is skipped)", True, float_range=(0.0, 3600.0)),
    "cameras": Spec(None, "Camera namespaces served by this process, e.g. [cam0, cam1]; empty = one camera "
                          "using image_raw/camera_info relative to the node namespace", True),
    "image_transport": Spec("raw", "raw: subscribe <image> (sensor_msgs/Image); compressed: subscribe "
                                   "<image>/compressed (jpeg/png). One subscription per camera", True),
    "rectify": Spec(True, "true: subscribe image_raw and rectify it with camera_info's D/K/R/P; false: "
                          "subscribe image_rect (already rectified, e.g. by image_proc)", True),
    "legacy_topics": Spec(True, "Also publish the deprecated 0.1 names ~/depth, ~/depth_colored, ~/points "
                                "while someone subscribes to them (removed in the next release)", True),
    "use_compressed": Spec(False, "Deprecated: use image_transport:=compressed", True),
    "autostart": Spec(True, "Configure and activate the lifecycle node at start-up", True),
    "torch_threads": Spec(0, "torch intra-op CPU threads (0 = torch default)", True, int_range=(0, 256)),
    "diagnostics_period": Spec(1.0, "Seconds between /diagnostics messages", True, float_range=(0.1, 60.0)),
    "depth_scale": Spec(1.0, "Multiplies the checkpoint's depth (already × its own scale); needed for "
                             "metres with a mono (relative) checkpoint", float_range=(1e-6, 1e6)),
    "camera_height": Spec(0.0, "Camera height above a flat ground in metres (KITTI: 1.65); > 0 scales each frame "
                               "so the ground plane fitted in the lower image band lies at this height (any "
                               "model; replaces depth_scale). 0 = off", float_range=(0.0, 100.0)),
    "ground_band": Spec(0.6, "Top of the image band searched for the ground, as a fraction of the image height "
                             "(the band runs to the bottom row)", float_range=(0.0, 0.95)),
    "scale_window": Spec(15, "Frames in the running median of the camera-height scale", int_range=(1, 1000)),
    "cloud_min_range": Spec(0.1, "Cloud: points nearer than this (m) are NaN (not the network's min_depth)",
                            float_range=(0.0, 1e6)),
    "cloud_max_range": Spec(100.0, "Cloud: points farther than this (m) are NaN (not the network's max_depth)",
                            float_range=(0.0, 1e6)),
    "min_depth": Spec(math.nan, "DEPRECATED alias of cloud_min_range (removed in the next release)"),
    "max_depth": Spec(math.nan, "DEPRECATED alias of cloud_max_range (removed in the next release)"),
    "cloud_stride": Spec(1, "Cloud: keep every Nth pixel in each direction", int_range=(1, 64)),
    "publish_colorized": Spec(True, "Publish ~/depth/colorized (only when someone subscribes)"),
    "colormap": Spec("magma", "OpenCV colormap for ~/depth/colorized: " + ", ".join(sorted(COLORMAPS))),
    "output_resolution": Spec("input", "input: depth at the camera image size; model: at the network size "
                                       "(K/P scaled in ~/depth/camera_info)"),
}

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def validate(values: dict) -> str | None:
    """Return None if ``values`` (the full set after a change) is acceptable, else the reason."""
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            continue
        if isinstance(spec.default, bool) and not isinstance(value, bool):
            return f"{name} must be a bool, got {value!r}"
        if isinstance(spec.default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{name} must be a number, got {value!r}"
        if isinstance(spec.default, int) and not isinstance(spec.default, bool) and \
                (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} must be an integer, got {value!r}"
        if spec.float_range and not (math.isfinite(value) and spec.float_range[0] <= value <= spec.float_range[1]):
            return f"{name} must be finite and in [{spec.float_range[0]}, {spec.float_range[1]}], got {value}"
        if spec.int_range and not spec.int_range[0] <= value <= spec.int_range[1]:
            return f"{name} must be in [{spec.int_range[0]}, {spec.int_range[1]}], got {value}"
    v = values
    if "device" in v and not _DEVICE.match(str(v["device"])):
        return f"device must be auto, cpu, cuda or cuda:N, got {v['device']!r}"
    if "backend" in v and v["backend"] not in BACKENDS:
        return f"backend must be one of {', '.join(BACKENDS)}, got {v['backend']!r}"
    if "depth_scale" in v and not v["depth_scale"] > 0:
        return f"depth_scale must be > 0, got {v['depth_scale']}"
    lo, hi = v.get("cloud_min_range"), v.get("cloud_max_range")
    if lo is not None and hi is not None and not 0 <= lo < hi:
        return f"need 0 <= cloud_min_range < cloud_max_range, got {lo}, {hi}"
    if "colormap" in v and v["colormap"] not in COLORMAPS:
        return f"colormap {v['colormap']!r} unknown; choose from {sorted(COLORMAPS)}"
    if "image_transport" in v and v["image_transport"] not in ("raw", "compressed"):
        return f"image_transport must be 'raw' or 'compressed', got {v['image_transport']!r}"
    if "output_resolution" in v and v["output_resolution"] not in ("input", "model"):
        return f"output_resolution must be 'input' or 'model', got {v['output_resolution']!r}"
    cams = v.get("cameras") or []
    for cam in cams:
        if not _NAMESPACE.match(cam):
            return f"camera namespace {cam!r} is not a valid relative ROS name"
    if len(set(cams)) != len(cams):
        return f"duplicate camera namespaces in {cams}"
    return None


DEPRECATED = {"min_depth": "cloud_min_range", "max_depth": "cloud_max_range"}


def set_value(values: dict, name: str, value, logger=None) -> None:
    """``values[name] = value``; a deprecated alias set to a number also sets its new name, with a warning."""
    values[name] = value
    new = DEPRECATED.get(name)
    if new is not None and isinstance(value, (int, float)) and not math.isnan(value):
        values[new] = float(value)
        if logger is not None:
            logger.warning(f"parameter {name} is deprecated (it is the network's range elsewhere): use {new}; "
                           f"{new} set to {value}")


def declare(node) -> dict:
    """Declare every parameter on ``node`` with a descriptor; return {name: value}."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.parameter import Parameter

    values = {}
    for name, spec in SPECS.items():
        desc = ParameterDescriptor(name=name, description=spec.description, read_only=spec.read_only)
        if spec.int_range:
            desc.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
        if spec.float_range:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                            to_value=float(spec.float_range[1]), step=0.0)]
        default = Parameter.Type.STRING_ARRAY if name == "cameras" else spec.default
        values[name] = node.declare_parameter(name, default, desc).value
    values["cameras"] = list(values["cameras"] or [])
    for old in DEPRECATED:
        set_value(values, old, values[old], node.get_logger())
    return values
