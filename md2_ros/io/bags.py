"""ROS bags (rosbag2 ``.mcap`` / ``.db3`` / folder, ROS 1 ``.bag``) through ``rosbags``: message type names,
the one typestore, opening for reading and the image_transport topic pairing rule."""
from __future__ import annotations

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
BAG_EXTS = {".mcap", ".db3", ".bag"}

__all__ = ["IMAGE_TYPE", "COMPRESSED_TYPE", "IMAGE_TYPES", "INFO_TYPE", "CLOUD_TYPE", "BAG_EXTS", "typestore",
           "sibling_info_topic"]


def typestore():
    """THE typestore for reading bags without embedded definitions and for writing: ROS 2 Humble's message
    definitions (sensor_msgs Image / CompressedImage / CameraInfo / PointCloud2 are identical in Jazzy)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


def sibling_info_topic(image_topic: str) -> str:
    """The CameraInfo topic image_transport pairs with an image topic: ``/cam/image_raw[/compressed]``
    -> ``/cam/camera_info``."""
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] in ("compressed", "theora", "compressedDepth"):
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])
