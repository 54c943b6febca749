"""Write depth results into a new rosbag2 (MCAP storage) with ``rosbags`` — ROS-free.

Topics (``prefix`` defaults to ``/md2``): ``<prefix>/depth`` (sensor_msgs/Image 32FC1, metres, NaN invalid),
``<prefix>/depth/camera_info`` (when intrinsics are known), ``<prefix>/points`` (sensor_msgs/PointCloud2,
organized H×W, x y z rgb float32 at 0/4/8/12, point_step 16, is_dense false), plus the input images: copied
unchanged from an input bag (with its camera_info), or written as ``/camera/image_raw`` (rgb8) and
``/camera/camera_info`` for image/video inputs. Every message keeps the input image's header stamp and frame_id.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .depth_io import depth_to_points, pack_cloud, valid_mask
from .sources import InputError

IMAGE = "sensor_msgs/msg/Image"
INFO = "sensor_msgs/msg/CameraInfo"
CLOUD = "sensor_msgs/msg/PointCloud2"


def bag_dir_for(path) -> Path:
    """rosbag2 writes a folder: ``out.mcap`` -> folder ``out`` holding ``out.mcap`` and ``metadata.yaml``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() == ".mcap" else path


class DepthBagWriter:
    """Context manager writing depth, clouds and the source images into a new MCAP rosbag2 folder."""

    def __init__(self, path, prefix: str = "/md2", image_topic: str = "/camera/image_raw",
                 info_topic: str = "/camera/camera_info"):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.path = bag_dir_for(path)
        if self.path.exists():
            raise InputError(f"--bag-out {self.path} already exists; remove it or choose another path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ts = get_typestore(Stores.ROS2_HUMBLE)
        self.prefix = "/" + prefix.strip("/")
        self.image_topic, self.info_topic = image_topic, info_topic
        self.writer = Writer(self.path, version=8, storage_plugin=StoragePlugin.MCAP)
        self.conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "DepthBagWriter":
        self.writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    @property
    def mcap_file(self) -> Path:
        return self.path / f"{self.path.name}.mcap"

    def write_raw(self, topic: str, msgtype: str, t_ns: int, data) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts)
        self.writer.write(self.conns[topic], int(t_ns), bytes(data))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def _write(self, topic: str, msg, t_ns: int) -> None:
        self.write_raw(topic, msg.__msgtype__, t_ns, self.ts.serialize_cdr(msg, msg.__msgtype__))

    def _header(self, stamp_ns: int, frame_id: str):
        T = self.ts.types
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        stamp = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
        return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def _camera_info(self, K: np.ndarray, width: int, height: int, header):
        T = self.ts.types
        P = np.zeros((3, 4))
        P[:, :3] = K
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return T[INFO](header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
                       k=np.asarray(K, np.float64).reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12),
                       binning_x=0, binning_y=0, roi=roi)

    def write_source_image(self, rgb: np.ndarray, K: np.ndarray | None, stamp_ns: int, frame_id: str) -> None:
        """The input image (rgb8) and, with intrinsics, its CameraInfo — for inputs that are not bags."""
        h, w = rgb.shape[:2]
        header = self._header(stamp_ns, frame_id)
        msg = self.ts.types[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
                                   data=np.ascontiguousarray(rgb).reshape(-1))
        self._write(self.image_topic, msg, stamp_ns)
        if K is not None:
            self._write(self.info_topic, self._camera_info(K, w, h, header), stamp_ns)

    def write_depth(self, depth: np.ndarray, rgb: np.ndarray, K: np.ndarray | None, stamp_ns: int, frame_id: str,
                    t_ns: int | None = None) -> None:
        """Depth (32FC1, NaN invalid), its CameraInfo and the organized coloured cloud (when K is known)."""
        h, w = depth.shape
        t_ns = stamp_ns if t_ns is None else t_ns
        header = self._header(stamp_ns, frame_id)
        d = np.where(valid_mask(depth), depth, np.nan).astype("<f4")
        msg = self.ts.types[IMAGE](header=header, height=h, width=w, encoding="32FC1", is_bigendian=0, step=4 * w,
                                   data=d.view(np.uint8).reshape(-1))
        self._write(f"{self.prefix}/depth", msg, t_ns)
        if K is None:
            return
        self._write(f"{self.prefix}/depth/camera_info", self._camera_info(K, w, h, header), t_ns)
        T = self.ts.types
        field = T["sensor_msgs/msg/PointField"]
        fields = [field(name=n, offset=o, datatype=7, count=1) for n, o in (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))]
        data = np.frombuffer(pack_cloud(depth_to_points(depth, K), rgb), np.uint8)
        cloud = T[CLOUD](header=header, height=h, width=w, fields=fields, is_bigendian=False, point_step=16,
                         row_step=16 * w, data=data, is_dense=False)
        self._write(f"{self.prefix}/points", cloud, t_ns)
