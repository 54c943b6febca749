"""Helpers for the ROS tests and the latency bench: KITTI frames as messages, a node
subprocess, and a test-side rclpy harness that publishes inputs and collects outputs."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync/image_02/data"


def isolate_ros_env() -> int:
    """Localhost-only discovery and a per-session ROS_DOMAIN_ID in 1..101 (Linux-safe range:
    higher ids up to 214 can collide with ephemeral ports). Returns the domain id."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    return int(os.environ["ROS_DOMAIN_ID"])


def kitti_frame(kitti_mini: pathlib.Path, index: int, size=None) -> np.ndarray:
    """Frame ``index`` of the sample drive as H×W×3 uint8 RGB, optionally resized to (W, H)."""
    path = kitti_mini / DRIVE / f"{index:010d}.png"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read KITTI frame {path}")
    if size is not None:
        bgr = cv2.resize(bgr, tuple(size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def kitti_camera_info(kitti_mini: pathlib.Path, width: int, height: int, frame_id: str = "camera2_optical"):
    """CameraInfo from P_rect_02 of calib_cam_to_cam.txt, scaled from S_rect_02 to width×height."""
    from md2_ros.io.kitti import read_calib_file
    from md2_ros.ros.conversions import camera_info_from_kitti
    calib = read_calib_file(kitti_mini / "2011_09_26" / "calib_cam_to_cam.txt")
    w0, h0 = calib["S_rect_02"]
    return camera_info_from_kitti(calib["P_rect_02"], width, height, frame_id, width / w0, height / h0)


def header(sec: int, nanosec: int = 0, frame_id: str = "camera2_optical"):
    from std_msgs.msg import Header
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = int(sec), int(nanosec)
    return h


def write_params(path: pathlib.Path, model_path, **overrides) -> pathlib.Path:
    """A params YAML like config/depth.yaml with ``model_path`` and overrides set."""
    import yaml
    base = yaml.safe_load((ROOT / "config" / "depth.yaml").read_text())
    params = base["/**"]["ros__parameters"]
    params.update(model_path=str(model_path), **overrides)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


class NodeProcess:
    """``python -m md2_ros.ros.run`` in a subprocess; stop() sends SIGINT and returns the log."""

    def __init__(self, params_file, *extra, log_path=None):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.log_path = pathlib.Path(log_path or f"/tmp/md2_node_{os.getpid()}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "md2_ros.ros.run", "--params-file", str(params_file),
                                      *extra], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout=10.0) -> str:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.log_path.read_text()


# Harness kinds (the 0.1 names the tests were written with) -> md2_ros.ros.topics keys.
OUTPUT_KEYS = {"depth": "depth", "depth/camera_info": "depth_info", "depth_colored": "colored", "points": "points"}


def stamp_key(h) -> tuple:
    return (h.stamp.sec, h.stamp.nanosec, h.frame_id)


class Harness:
    """Test-side node: publishes image/camera_info for each camera prefix and records every
    output by (stamp, frame_id). Spins only inside ``wait``.

    ``info_seen(cam, info) -> bool``, when the node runs in this process, tells ``send`` that the node holds
    ``info``: the image then cannot overtake its CameraInfo (the node's executor may take a ready image before
    a ready CameraInfo). Without it ``send`` pauses 0.2 s after the CameraInfo."""

    def __init__(self, name="md2_test_harness", cameras=("",), node_ns="/depth_node", compressed=True, inputs="/",
                 info_seen=None):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray

        from md2_ros.ros.topics import topic_names
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        self.rclpy = rclpy
        self.info_seen = info_seen
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub, self.got, self.diagnostics, self._clients = {}, {}, [], {}
        for cam in cameras:
            pre = f"{cam}/" if cam else ""
            src = inputs.rstrip("/") + "/" + pre          # where the node reads (its namespace, or remapped)
            self.pub[cam] = {
                "image": self.node.create_publisher(Image, f"{src}image_raw", qos_profile_sensor_data),
                "camera_info": self.node.create_publisher(CameraInfo, f"{src}camera_info", qos_profile_sensor_data),
            }
            if compressed:
                self.pub[cam]["compressed"] = self.node.create_publisher(
                    CompressedImage, f"{src}image_raw/compressed", qos_profile_sensor_data)
            names = topic_names(cam)
            for kind, typ in (("depth", Image), ("depth/camera_info", CameraInfo), ("depth_colored", Image),
                              ("points", PointCloud2)):
                topic = f"{node_ns}/{names[OUTPUT_KEYS[kind]][2:]}"    # ~/x -> <node>/x
                self.node.create_subscription(typ, topic, self._recorder(cam, kind), 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def _recorder(self, cam, kind):
        def cb(msg):
            self.got.setdefault((cam, kind), {})[stamp_key(msg.header)] = msg
        return cb

    def wait(self, predicate, timeout=10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def call(self, srv_type, name, request, timeout=45.0, rounds=3):
        """``name``'s response to ``request``. One client per service, kept: discovery matches it once (that can
        take seconds on a loaded machine) and later calls reuse it. A client that is still unmatched after
        ``timeout / rounds`` is replaced by a fresh one: in a full suite run a first client once stayed unmatched
        for 30 s while the node's topics matched (Fast DDS), and the same test passed alone in 14 s."""
        for _ in range(rounds):
            if name not in self._clients:
                self._clients[name] = self.node.create_client(srv_type, name)
            client = self._clients[name]
            if client.wait_for_service(timeout_sec=timeout / rounds):
                break
            self.node.destroy_client(self._clients.pop(name))
        else:
            seen = sorted(n for n, _ in self.node.get_service_names_and_types())
            raise AssertionError(f"no service {name} after {timeout:.0f} s; the graph has {seen}")
        fut = client.call_async(request)
        assert self.wait(fut.done, timeout), f"{name} did not answer"
        return fut.result()

    def output(self, kind, hdr, cam=""):
        return self.got.get((cam, kind), {}).get(stamp_key(hdr))

    def wait_connected(self, timeout=30.0, cam="", kind="image") -> bool:
        """Until the node subscribes to our ``kind`` image topic and we receive its depth topics."""
        pubs = self.pub[cam]
        subs = [s for s in self.node.subscriptions if "depth" in s.topic_name]
        return self.wait(lambda: pubs[kind].get_subscription_count() > 0 and all(
            s.get_publisher_count() > 0 for s in subs), timeout)

    def send(self, msg, info=None, cam="", kind="image", wait_for=("depth",), timeout=10.0):
        """Publish ``info`` then ``msg``; return {kind: output} for the kinds in ``wait_for``
        (None for those that did not arrive in ``timeout``)."""
        if info is not None:
            self.publish_info(info, cam)
        self.pub[cam][kind].publish(msg)
        self.wait(lambda: all(self.output(k, msg.header, cam) is not None for k in wait_for), timeout)
        return {k: self.output(k, msg.header, cam) for k in wait_for}

    def warm_up(self, msg, cam="", kind="image", tries=5, timeout=4.0):
        """Send ``msg`` until its depth arrives, then forget all outputs: a best-effort sample sent just after
        discovery can be lost while the node's reader has not yet matched our writer."""
        for _ in range(tries):
            self.pub[cam][kind].publish(msg)
            if self.wait(lambda: self.output("depth", msg.header, cam) is not None, timeout):
                break
        else:
            raise AssertionError(f"no depth for a warm-up frame sent {tries} times in {tries * timeout:g} s")
        self.wait(lambda: False, 0.2)                # room for late siblings, then a clean record
        self.got.clear()

    def publish_info(self, info, cam=""):
        """Publish ``info`` (sensor-data QoS: best effort, so again if the node has not seen it in 2 s)."""
        if self.info_seen is None:
            self.pub[cam]["camera_info"].publish(info)
            self.wait(lambda: False, 0.2)
            return
        for _ in range(3):
            self.pub[cam]["camera_info"].publish(info)
            if self.wait(lambda: self.info_seen(cam, info), 2.0):
                return
        raise AssertionError(f"the node did not receive CameraInfo for camera {cam!r} in 6 s")

    def latest_status(self, contains=""):
        for arr in reversed(self.diagnostics):
            for st in arr.status:
                if contains in st.name:
                    return st, {kv.key: kv.value for kv in st.values}
        return None, {}

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


class FakePub:
    """Stands in for a node publisher in in-process tests: keeps what is published, reports one subscriber."""

    def __init__(self):
        self.msgs = []

    def publish(self, msg):
        self.msgs.append(msg)

    def get_subscription_count(self):
        return 1
