"""Depth node latency: publish KITTI frames to a running node and time stamp -> ~/depth.

    python bench/node_latency.py [--model m.safetensors] [--size 640x192] [--rates 10 30]
                                 [--count 100] [--device cpu] [--torch-threads 1] [--all-outputs]

Starts ``python -m md2_ros.ros.run`` in a subprocess (localhost-only discovery, its own ROS
domain), measures the pure model time at the same size in this process first (node idle), then:

* closed loop: the next frame is sent when the previous depth arrives (no queueing): the
  node's own overhead = latency - model time;
* open loop at each rate: ``--count`` frames on a fixed schedule; the node keeps only the newest
  frame, so when it is slower than the camera the rest are dropped (drop %) and latency
  includes waiting for the worker to finish the previous frame.

Latency = receive time (wall clock) - input header stamp (wall clock at publish).
"overhead vs model" compares with the pure model time measured in this process before and
after the node runs (mean of both); "latency − node inference" subtracts the inference time
the node itself reports on /diagnostics, which removes run-to-run CPU noise from the figure.
Without --model a random-weight ResNet18 net of --size is used (same compute as a trained one).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from md2_ros.io.stamps import ns_to_stamp, stamp_ns  # noqa: E402
DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync/image_02/data"


def load_frames(kitti: pathlib.Path, size, n: int) -> list[np.ndarray]:
    files = sorted((kitti / DRIVE).glob("*.png"))[:n]
    if not files:
        raise SystemExit(f"no KITTI frames under {kitti / DRIVE}")
    return [np.ascontiguousarray(cv2.resize(cv2.imread(str(f)), size, interpolation=cv2.INTER_AREA)[..., ::-1])
            for f in files]


def model_time(path, frames, device, threads, reps=30) -> tuple[float, float]:
    """(mean, p99) ms of DepthModel.predict on the frames, after warm-up."""
    import torch

    from md2_ros.core.model import DepthModel
    if threads:
        torch.set_num_threads(threads)
    model = DepthModel.load(path, device=device)
    for f in frames[:5]:
        model.predict(f)
    times = []
    for i in range(reps):
        t = time.perf_counter()
        model.predict(frames[i % len(frames)])
        times.append((time.perf_counter() - t) * 1e3)
    del model
    return float(np.mean(times)), float(np.percentile(times, 99))


class Bench:
    """Publisher of frames + CameraInfo, recorder of depth arrival times (executor in a thread)."""

    def __init__(self, frames, info, all_outputs: bool):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from md2_ros.ros.conversions import numpy_to_image
        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node("md2_latency_bench")
        self.pub = self.node.create_publisher(Image, "/image_raw", qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, "/camera_info", qos_profile_sensor_data)
        self.templates = [numpy_to_image(f, "rgb8") for f in frames]
        self.info = info
        self.arrivals: dict[int, int] = {}
        self.infer_ms: list[float] = []
        self.lock = threading.Lock()
        self.node.create_subscription(Image, "/depth_node/depth/image_rect", self._on_depth, 10)
        if all_outputs:
            self.node.create_subscription(PointCloud2, "/depth_node/depth/points", lambda m: None, 1)
            self.node.create_subscription(Image, "/depth_node/depth/colorized", lambda m: None, 1)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_depth(self, msg):
        now = time.time_ns()
        with self.lock:
            self.arrivals[stamp_ns(msg.header)] = now

    def _on_diag(self, arr):
        for st in arr.status:
            values = {kv.key: kv.value for kv in st.values}
            if "depth_node" in st.name and values.get("inference_ms", "nan") != "nan":
                self.infer_ms.append(float(values["inference_ms"]))

    def connected(self) -> bool:
        return self.pub.get_subscription_count() > 0 and \
            self.node.count_publishers("/depth_node/depth/image_rect") > 0

    def send(self, i: int) -> int:
        from sensor_msgs.msg import Image
        t = self.templates[i % len(self.templates)]
        stamp = time.time_ns()
        msg = Image(height=t.height, width=t.width, encoding=t.encoding, step=t.step, data=t.data)
        msg.header.frame_id = self.info.header.frame_id
        msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(stamp)
        if i % 10 == 0:
            self.info_pub.publish(self.info)
        self.pub.publish(msg)
        return stamp

    def wait_for(self, stamp, timeout) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if stamp in self.arrivals:
                    return True
            time.sleep(0.0005)
        return False

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT (the node's clean shutdown), then kill if it is still running after ``timeout`` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def summarise(name, bench, stamps, model_ms, rss, diag_from: int) -> dict:
    with bench.lock:
        got = {s: bench.arrivals[s] for s in stamps if s in bench.arrivals}
    lat = np.array([(got[s] - s) / 1e6 for s in stamps if s in got])
    span = (max(got.values()) - min(got.values())) / 1e9 if len(got) > 1 else float("nan")
    mean = float(lat.mean()) if len(lat) else float("nan")
    return {"mode": name, "sent": len(stamps), "received": len(got), "drop_pct": 100 * (1 - len(got) / len(stamps)),
            "out_hz": (len(got) - 1) / span if len(got) > 1 else float("nan"), "mean_ms": mean,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
            "model_ms": model_ms, "overhead_pct": 100 * (mean - model_ms) / model_ms,
            "node_infer_ms": float(np.mean(bench.infer_ms[diag_from:])) if bench.infer_ms[diag_from:] else float("nan"),
            "rss_mb": rss}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python bench/node_latency.py --size 640x192 --all-outputs")
    ap.add_argument("--model", help="checkpoint; default: random ResNet18 at --size")
    ap.add_argument("--size", default="640x192", help="published image WxH")
    ap.add_argument("--net-size", default="640x192", help="WxH of the random network when --model is not given")
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    ap.add_argument("--count", type=int, default=100, help="frames per open-loop rate")
    ap.add_argument("--closed-loop", type=int, default=40, help="frames in the closed-loop run (0 = skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads in node and model timing (0 = default)")
    ap.add_argument("--default-transport", action="store_true",
                    help="leave Fast DDS defaults (512 KiB SHM segment) in bench and node")
    ap.add_argument("--all-outputs", action="store_true", help="also subscribe to ~/depth/points and ~/depth/colorized")
    ap.add_argument("--kitti", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("MD2_SHARED", ROOT.parent / "shared")) / "data" / "kitti_mini")
    args = ap.parse_args(argv)
    import psutil
    import yaml

    from md2_ros.io.kitti import read_calib_file
    from md2_ros.ros.conversions import camera_info_from_kitti
    from md2_ros.ros.transport import configure_fastdds
    if not args.default_transport:
        configure_fastdds()     # this process publishes the big images (like a camera driver would)
    else:
        os.environ["MD2_FASTDDS_SHM_MB"] = "0"
    w, h = (int(x) for x in args.size.lower().split("x"))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="md2_bench_"))
    model_path = args.model
    if not model_path:
        from md2_ros.core.model import DepthModel
        model_path = str(tmp / "random.safetensors")
        nw, nh = (int(x) for x in args.net_size.lower().split("x"))
        DepthModel(num_layers=18, height=nh, width=nw).save(model_path)
    frames = load_frames(args.kitti, (w, h), 20)
    calib = read_calib_file(args.kitti / "2011_09_26" / "calib_cam_to_cam.txt")
    w0, h0 = calib["S_rect_02"]
    info = camera_info_from_kitti(calib["P_rect_02"], w, h, "camera2_optical", w / w0, h / h0)

    model_ms, model_p99 = model_time(model_path, frames, args.device, args.torch_threads)
    print(f"pure model time at {w}x{h} on {args.device}: mean {model_ms:.1f} ms, p99 {model_p99:.1f} ms", flush=True)

    params = {"model_path": model_path, "device": args.device, "torch_threads": args.torch_threads,
              "diagnostics_period": 1.0}
    (tmp / "p.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(tmp / "node.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "md2_ros.ros.run", "--params-file", str(tmp / "p.yaml")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    bench = Bench(frames, info, args.all_outputs)
    rows = []
    try:
        end = time.monotonic() + 120
        while not bench.connected() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        if not bench.connected():
            raise SystemExit(f"node did not come up; log: {(tmp / 'node.log').read_text()}")
        for i in range(5):                              # warm-up
            bench.wait_for(bench.send(i), 30.0)
        rss = lambda: psutil.Process(proc.pid).memory_info().rss / 2 ** 20  # noqa: E731
        if args.closed_loop:
            r0, stamps, d0 = rss(), [], len(bench.infer_ms)
            for i in range(args.closed_loop):
                stamps.append(bench.send(i))
                bench.wait_for(stamps[-1], 10.0)
            time.sleep(1.2)
            rows.append(summarise("closed loop", bench, stamps, model_ms, (r0, rss()), d0))
        for rate in args.rates:
            r0, stamps, t0, d0 = rss(), [], time.monotonic(), len(bench.infer_ms)
            for i in range(args.count):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stamps.append(bench.send(i))
            time.sleep(max(2.0, 3 * model_ms / 1e3))
            rows.append(summarise(f"{rate:g} Hz", bench, stamps, model_ms, (r0, rss()), d0))
    finally:
        bench.close()
        stop_node(proc)
        log.close()
    after_ms, after_p99 = model_time(model_path, frames, args.device, args.torch_threads)
    print(f"pure model time again (node stopped): mean {after_ms:.1f} ms, p99 {after_p99:.1f} ms")
    model_ms, model_p99 = (model_ms + after_ms) / 2, max(model_p99, after_p99)
    shutil.rmtree(tmp, ignore_errors=True)      # the random checkpoint is ~57 MB
    for r in rows:
        r["model_ms"] = model_ms
        r["overhead_pct"] = 100 * (r["mean_ms"] - model_ms) / model_ms
    outputs = "depth/image_rect + depth/points + depth/colorized" if args.all_outputs else "depth only"
    print(f"\nnode on {args.device}, torch threads {args.torch_threads or 'default'}, {w}x{h} rgb8, "
          f"subscribed: {outputs}, model {model_ms:.1f} ms (p99 {model_p99:.1f})")
    print("| mode | sent | received | drop % | output Hz | latency mean ms | p50 | p99 | node inference ms | "
          "latency − node inference ms | overhead vs model | RSS MB start→end |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['sent']} | {r['received']} | {r['drop_pct']:.0f} | {r['out_hz']:.1f} | "
              f"{r['mean_ms']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['node_infer_ms']:.1f} | "
              f"{r['mean_ms'] - r['node_infer_ms']:.1f} | "
              f"{r['overhead_pct']:+.1f}% | {r['rss_mb'][0]:.0f}→{r['rss_mb'][1]:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
