"""ROS bags (rosbag2 ``.mcap`` / ``.db3`` / folder, ROS 1 ``.bag``) through ``rosbags``: message type names,
the one typestore, opening for reading, headers for writing and the image_transport topic pairing rule."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .clouds import CLOUD_FIELDS, POINT_STEP, depth_to_points, pack_cloud, valid_mask
from .errors import FormatError
from .stamps import ns_to_stamp

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
BAG_EXTS = {".mcap", ".db3", ".bag"}

__all__ = ["IMAGE_TYPE", "COMPRESSED_TYPE", "IMAGE_TYPES", "INFO_TYPE", "CLOUD_TYPE", "BAG_EXTS", "typestore",
           "sibling_info_topic", "BagReadError", "open_reader", "list_topics", "make_header", "bag_dir_for",
           "DepthBagWriter", "TopicChoiceError", "choose_image_topic", "choose_info_topic"]


class BagReadError(FormatError):
    """A bag that cannot be opened or read; the text names the bag and the likely cause."""


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


def open_reader(path):
    """An opened ``rosbags.highlevel.AnyReader`` on ``path`` (close it, e.g. ``with closing(open_reader(p))``), reading with
    `typestore` when the bag carries no message definitions. FileNotFoundError if missing, BagReadError
    (with a repair hint) if unreadable."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    reader = AnyReader([path], default_typestore=typestore())
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for truncated / corrupt files
        hint = {".mcap": "; an mcap cut off while recording can often be fixed with `mcap recover`",
                ".db3": "; try `sqlite3 in.db3 .recover | sqlite3 fixed.db3`"}.get(path.suffix, "")
        raise BagReadError(f"cannot read bag {path}: {type(exc).__name__}: {exc} "
                           f"(truncated or corrupt file?{hint})") from exc
    return reader


def list_topics(reader) -> dict[str, tuple[str, int]]:
    """{topic: (msgtype, message count)} of an opened reader."""
    out: dict[str, tuple[str, int]] = {}
    for c in reader.connections:
        typ, n = out.get(c.topic, (c.msgtype, 0))
        out[c.topic] = (typ, n + int(c.msgcount))
    return out


class TopicChoiceError(FormatError):
    """The image or CameraInfo topic cannot be chosen: missing, ambiguous or of the wrong type (the text
    names the bag, the topic and the candidates)."""


def _names(topics: dict, types) -> list[str]:
    return sorted(t for t, (typ, _) in topics.items() if typ in types)


def choose_image_topic(topics: dict, path, topic: str | None = None, hint: str = "pick one") -> str:
    """The image topic to read from ``topics`` ({topic: (msgtype, count)}, :func:`list_topics`): ``topic``
    checked, or the bag's only Image/CompressedImage topic. ``hint`` says how the caller picks one."""
    images = _names(topics, IMAGE_TYPES)
    if topic is None:
        if len(images) != 1:
            raise TopicChoiceError(f"{path}: {'no' if not images else 'several'} image topics "
                                   f"({', '.join(images) or 'none'}; all topics: {', '.join(sorted(topics)) or 'none'}); "
                                   f"{hint}")
        return images[0]
    if topic not in topics:
        raise TopicChoiceError(f"{path}: topic {topic} is not in this bag; image topics: {', '.join(images) or 'none'}")
    if topics[topic][0] not in IMAGE_TYPES:
        raise TopicChoiceError(f"{path}: topic {topic} is {topics[topic][0]}, not an Image/CompressedImage topic; "
                               f"image topics: {', '.join(images) or 'none'}")
    return topic


def choose_info_topic(topics: dict, path, image_topic: str, info_topic: str | None = None, required: bool = True,
                      hint: str = "pick one") -> str | None:
    """The CameraInfo topic for ``image_topic``: ``info_topic`` checked, else the image_transport sibling
    (:func:`sibling_info_topic`), else the bag's only CameraInfo topic. None when none can be told apart
    and not ``required``; else TopicChoiceError."""
    infos = _names(topics, (INFO_TYPE,))
    if info_topic is not None:
        if info_topic not in infos:
            raise TopicChoiceError(f"{path}: CameraInfo topic {info_topic} not found; CameraInfo topics: "
                                   f"{', '.join(infos) or 'none'}")
        return info_topic
    sibling = sibling_info_topic(image_topic)
    if sibling in infos:
        return sibling
    if len(infos) == 1:
        return infos[0]
    if not required:
        return None
    if not infos:
        raise TopicChoiceError(f"{path} has no {INFO_TYPE} topic: intrinsics are needed (topics: "
                               f"{', '.join(sorted(topics))}); record camera_info with the images")
    raise TopicChoiceError(f"{path}: cannot tell which CameraInfo topic belongs to {image_topic} "
                           f"(candidates {', '.join(infos)}); {hint}")


def make_header(types, stamp_ns: int, frame_id: str):
    """A ``std_msgs/msg/Header`` of ``types`` (a typestore's ``.types``) for integer nanoseconds."""
    sec, nanosec = ns_to_stamp(stamp_ns)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


# ----------------------------------------------------------------------------------------- writing
def bag_dir_for(path) -> Path:
    """rosbag2 writes a folder: ``out.mcap`` -> folder ``out`` holding ``out.mcap`` and ``metadata.yaml``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() == ".mcap" else path


class DepthBagWriter:
    """Context manager writing depth, clouds and the source images into a new MCAP rosbag2 folder.

    Topics (``prefix`` defaults to ``/md2``): ``<prefix>/depth`` (Image 32FC1, metres, NaN invalid),
    ``<prefix>/depth/camera_info`` and ``<prefix>/points`` (organized, see `md2_ros.io.clouds`) when intrinsics
    are known, plus the input images: copied unchanged from an input bag (`write_raw`), or written as
    ``/camera/image_raw`` (rgb8) and ``/camera/camera_info`` for image/video inputs. Every message keeps the
    input image's header stamp and frame_id.

    The bag is written under ``<out>.partial/`` and moved to ``<out>`` when the run ends well, so a killed or
    failed run never leaves something that looks complete: its ``.partial`` folder says what happened (an
    mcap cut off by a kill can often be repaired with ``mcap recover``), and a rerun refuses to write over it."""

    def __init__(self, path, prefix: str = "/md2", image_topic: str = "/camera/image_raw",
                 info_topic: str = "/camera/camera_info"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = bag_dir_for(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; remove it or choose another path")
        if self.partial.exists():
            raise FileExistsError(f"{self.partial} is left from an interrupted run (if it was killed, `mcap recover "
                                  f"{self.partial / self.path.name / (self.path.name + '.mcap')} -o fixed.mcap` may "
                                  "repair it); remove it or choose another path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ts = typestore()
        self.prefix = "/" + prefix.strip("/")
        self.image_topic, self.info_topic = image_topic, info_topic
        self.writer = Writer(self.partial / self.path.name, version=8, storage_plugin=StoragePlugin.MCAP)
        self.conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "DepthBagWriter":
        self.writer.open()
        return self

    def __exit__(self, exc_type=None, *exc) -> None:
        """Close the bag; move it to its final name only when the run ended without an error."""
        self.writer.close()
        if exc_type is None:
            os.rename(self.partial / self.path.name, self.path)
            self.partial.rmdir()
        else:
            log.warning("the bag written before the run stopped (%s) is kept in %s", exc_type.__name__, self.partial)

    def write_raw(self, topic: str, msgtype: str, t_ns: int, data) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts)
        self.writer.write(self.conns[topic], int(t_ns), bytes(data))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def _write(self, topic: str, msg, t_ns: int) -> None:
        self.write_raw(topic, msg.__msgtype__, t_ns, self.ts.serialize_cdr(msg, msg.__msgtype__))

    def _header(self, stamp_ns: int, frame_id: str):
        return make_header(self.ts.types, stamp_ns, frame_id)

    def _camera_info(self, K: np.ndarray, width: int, height: int, header):
        T = self.ts.types
        P = np.zeros((3, 4))
        P[:, :3] = K
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return T[INFO_TYPE](header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
                       k=np.asarray(K, np.float64).reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12),
                       binning_x=0, binning_y=0, roi=roi)

    def write_source_image(self, rgb: np.ndarray, K: np.ndarray | None, stamp_ns: int, frame_id: str) -> None:
        """The input image (rgb8) and, with intrinsics, its CameraInfo — for inputs that are not bags."""
        h, w = rgb.shape[:2]
        header = self._header(stamp_ns, frame_id)
        msg = self.ts.types[IMAGE_TYPE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
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
        msg = self.ts.types[IMAGE_TYPE](header=header, height=h, width=w, encoding="32FC1", is_bigendian=0, step=4 * w,
                                   data=d.view(np.uint8).reshape(-1))
        self._write(f"{self.prefix}/depth", msg, t_ns)
        if K is None:
            return
        self._write(f"{self.prefix}/depth/camera_info", self._camera_info(K, w, h, header), t_ns)
        T = self.ts.types
        field = T["sensor_msgs/msg/PointField"]
        fields = [field(name=n, offset=o, datatype=7, count=1) for n, o in CLOUD_FIELDS]   # 7 = FLOAT32
        data = np.frombuffer(pack_cloud(depth_to_points(depth, K), rgb), np.uint8)
        cloud = T[CLOUD_TYPE](header=header, height=h, width=w, fields=fields, is_bigendian=False,
                              point_step=POINT_STEP, row_step=POINT_STEP * w, data=data, is_dense=False)
        self._write(f"{self.prefix}/points", cloud, t_ns)
