"""Topic names and QoS of the depth node (image_transport / depth_image_proc conventions).

Per camera namespace ``<cam>`` ('' = the node namespace):

    in   <cam>/image_raw                  rectify:=true (default): raw image, rectified with camera_info
         <cam>/image_rect                 rectify:=false: an already rectified image (image_proc)
         .../compressed                   image_transport:=compressed (one subscription, never both)
         <cam>/camera_info                sensor-data QoS; plus a transient-local reader when a latched
                                          (one-shot) publisher is seen and no CameraInfo arrived yet
    out  ~/<cam>/depth/image_rect         32FC1 metres, NaN invalid
         ~/<cam>/depth/camera_info        describes depth/image_rect exactly (rectified: D = 0, R = I)
         ~/<cam>/depth/colorized          bgr8, for people
         ~/<cam>/depth/points             organized PointCloud2 (x, y, z, rgb)

Deprecated names (0.1; published only while someone subscribes; removed in the next release):
``~/<cam>/depth`` (= depth/image_rect), ``~/<cam>/depth_colored`` (= depth/colorized),
``~/<cam>/points`` (= depth/points).
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
# What a calibration publisher that latches its CameraInfo uses (tests; the node matches what it finds).
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
OUTPUT_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

TRANSPORTS = ("raw", "compressed")
OUTPUTS = ("depth", "depth_info", "colored", "points")
LEGACY = {"depth": "depth", "colored": "depth_colored", "points": "points"}   # output key -> 0.1 name


def topic_names(camera: str, rectify: bool = True, transport: str = "raw") -> dict:
    """Input and output topic names for one camera namespace ('' = the node namespace).

    Keys: image (the one image subscription), camera_info, depth, depth_info, colored, points,
    and legacy_<key> for the deprecated output names.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"image_transport must be one of {TRANSPORTS}, got {transport!r}")
    pre = f"{camera}/" if camera else ""
    image = f"{pre}image_raw" if rectify else f"{pre}image_rect"
    names = {
        "image": image + ("/compressed" if transport == "compressed" else ""), "camera_info": f"{pre}camera_info",
        "depth": f"~/{pre}depth/image_rect", "depth_info": f"~/{pre}depth/camera_info",
        "colored": f"~/{pre}depth/colorized", "points": f"~/{pre}depth/points",
    }
    names.update({f"legacy_{key}": f"~/{pre}{old}" for key, old in LEGACY.items()})
    return names
