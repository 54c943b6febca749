"""Play a bag into the real rclpy depth node (in-process, lifecycle) and collect its outputs."""
from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import numpy as np

from md2_ros.io.bags import open_reader
from md2_ros.io.stamps import stamp_ns

OUTPUTS = {"depth": "/depth_node/depth/image_rect", "colored": "/depth_node/depth/colorized", "points": "/depth_node/depth/points",
           "info": "/depth_node/depth/camera_info"}


def _to_ros(msg, cls):
    """A rosbags message -> the rclpy message class (same field names, recursively)."""
    out = cls()
    for name in out.get_fields_and_field_types():
        value = getattr(msg, name)
        current = getattr(out, name)
        if hasattr(current, "get_fields_and_field_types"):
            value = _to_ros(value, type(current))
        elif isinstance(value, np.ndarray):
            value = value.tolist() if name not in ("data",) else value.tobytes()
        setattr(out, name, value)
    return out


def _read_bag(bag: Path) -> list:
    """[(topic, rclpy message)] in bag order: CameraInfo and CompressedImage."""
    from sensor_msgs.msg import CameraInfo, CompressedImage

    msgs = []
    with closing(open_reader(bag)) as reader:
        for conn, _t, raw in reader.messages():
            cls = CameraInfo if conn.topic.endswith("camera_info") else CompressedImage
            msgs.append((conn.topic, _to_ros(reader.deserialize(raw, conn.msgtype), cls)))
    return msgs


class Player:
    """The node, a player/recorder node and an executor; outputs kept by (kind, stamp ns)."""

    def __init__(self, model_path: Path, device: str, camera_height: float = 0.0):
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        import rclpy
        from md2_ros.ros.depth_node import DepthNode

        self.node = DepthNode("depth_node", parameter_overrides=[
            Parameter("model_path", value=str(model_path)), Parameter("device", value=device),
            Parameter("image_transport", value="compressed"), Parameter("camera_height", value=float(camera_height))])
        self.io = rclpy.create_node("demo_player")
        self.pub_img = self.io.create_publisher(CompressedImage, "image_raw/compressed", 10)
        self.pub_info = self.io.create_publisher(CameraInfo, "camera_info", 10)
        self.got: dict = {}  # keyed by stamp so a late duplicate can't be mistaken for this frame's output
        types = {"depth": Image, "colored": Image, "points": PointCloud2, "info": CameraInfo}
        for kind, topic in OUTPUTS.items():
            self.io.create_subscription(types[kind], topic, self._keep(kind), 10)
        self.ex = MultiThreadedExecutor()
        self.ex.add_node(self.node)
        self.ex.add_node(self.io)

    def _keep(self, kind):
        return lambda m: self.got.__setitem__((kind, stamp_ns(m.header)), m)

    def spin_until(self, done, seconds: float) -> None:
        end = time.time() + seconds
        while not done() and time.time() < end:
            self.ex.spin_once(timeout_sec=0.02)

    def play(self, img, info, timeout_s: float) -> None:
        """Publish one frame (re-sent: best-effort input) until its depth is back, then wait for the rest."""
        stamp = stamp_ns(img.header)
        t_end = time.time() + timeout_s
        while ("depth", stamp) not in self.got and time.time() < t_end:
            if info is not None:
                self.pub_info.publish(info)
            self.pub_img.publish(img)
            self.spin_until(lambda: ("depth", stamp) in self.got, 0.5)
        if ("depth", stamp) not in self.got:
            raise RuntimeError(f"the depth node produced no output within {timeout_s:.0f} s for stamp {stamp}")
        self.spin_until(lambda: ("points", stamp) in self.got and ("colored", stamp) in self.got, 1.0)

    def close(self) -> None:
        self.ex.shutdown()
        self.node.trigger_deactivate()  # lifecycle: stops the worker thread before the node goes away
        self.node.destroy_node()
        self.io.destroy_node()


def _collect(player: Player, img, results: list, extra: dict) -> None:
    """Move one frame's outputs from ``player.got`` into ``results`` / ``extra``."""
    from md2_ros.ros.conversions import cloud_to_numpy, image_to_numpy

    stamp, got = stamp_ns(img.header), player.got
    d = got[("depth", stamp)]
    extra["stamps_ok"] &= d.header.frame_id == img.header.frame_id
    colored = got.get(("colored", stamp))
    results.append((stamp, image_to_numpy(d).astype(np.float32),
                    image_to_numpy(colored) if colored is not None else None))
    if ("points", stamp) in got:
        extra["cloud"] = cloud_to_numpy(got[("points", stamp)])
    if ("info", stamp) in got:
        extra["K"] = np.array(got[("info", stamp)].k, dtype=np.float64).reshape(3, 3)
    for k in [k for k in list(got) if k[1] <= stamp]:  # forget what was consumed (callbacks may add)
        got.pop(k, None)


def run_node(model_path: Path, bag: Path, device: str, timeout_s: float = 60.0,
             camera_height: float = 0.0) -> tuple[list, dict]:
    """Frames are published one at a time, each after the previous depth arrived, so none is dropped.
    Returns ([(stamp_ns, depth H×W float32, colored bgr or None)], {"cloud": (xyz, rgb) of the last frame,
    "K": published depth camera_info K, "stamps_ok": bool})."""
    import rclpy
    from md2_ros.ros.transport import configure_fastdds

    msgs = _read_bag(bag)
    configure_fastdds()  # the player publishes 1242×375 images: give Fast DDS a big enough SHM segment
    rclpy.init()
    results, extra = [], {"stamps_ok": True}
    try:
        player = Player(model_path, device, camera_height)
        player.spin_until(lambda: player.node.count_subscribers("image_raw/compressed") > 0, 10)
        info = None
        for topic, m in msgs:
            if topic.endswith("camera_info"):
                info = m
                continue
            player.play(m, info, timeout_s)
            _collect(player, m, results, extra)
        extra["stamps_ok"] &= len(results) == len({r[0] for r in results})
        player.close()
    finally:
        rclpy.try_shutdown()
    return results, extra
