"""Soak: a looping sequence through the depth node for many frames, watching for leaks and drift.

    python bench/soak.py [--frames 10000] [--every 500] [--size 192x64] [--source synthetic|kitti]
                         [--device cpu] [--torch-threads 1] [--rate 0]

Starts ``python -m md2_ros.ros.run`` (random-weight ResNet18 at --net-size, localhost-only discovery, its
own ROS domain) and plays a looping sequence into it: the synthetic scene (20 rendered frames with exact
intrinsics) or the KITTI sample. Closed loop by default (the next frame goes out when every output of the
previous one arrived, or after --timeout: a drop); --rate N plays N Hz open loop instead. All four outputs
(depth/image_rect, depth/camera_info, depth/colorized, depth/points) are subscribed, so the whole path runs.

Every --every frames it prints the node's RSS (and GPU memory with --device cuda, from nvidia-smi), open
file descriptors and threads, frames received/dropped in the window, and latency (publish -> depth arrival)
mean/p50/p95. At the end: RSS growth from the first report to the last, latency drift (last window mean /
first window mean) and the pass criterion: RSS growth < 5 %.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from node_latency import Bench, stop_node  # noqa: E402  (the same publisher and shutdown as the latency bench)

RSS_LIMIT = 0.05


def synthetic_frames(w: int, h: int, n: int = 20):
    """(frames RGB, CameraInfo) of the synthetic scene: exact pinhole intrinsics, no distortion."""
    from md2_ros.ros.conversions import camera_info_from_kitti
    from md2_ros.synthetic import render_sequence
    seq = render_sequence(num_frames=n, height=h, width=w)
    P = np.hstack([seq.K, np.zeros((3, 1))])
    return seq.images, camera_info_from_kitti(P, w, h, "camera_optical")


def kitti_frames(w: int, h: int, n: int = 20):
    import cv2

    from md2_ros.io.kitti import read_calib_file
    from md2_ros.ros.conversions import camera_info_from_kitti
    kitti = pathlib.Path(os.environ.get("MD2_SHARED", ROOT.parent / "shared")) / "data" / "kitti_mini"
    files = sorted((kitti / "2011_09_26/2011_09_26_drive_seq78_sync/image_02/data").glob("*.png"))[:n]
    if not files:
        raise SystemExit(f"no KITTI frames under {kitti}")
    frames = [np.ascontiguousarray(cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_AREA)[..., ::-1])
              for f in files]
    calib = read_calib_file(kitti / "2011_09_26" / "calib_cam_to_cam.txt")
    w0, h0 = calib["S_rect_02"]
    return frames, camera_info_from_kitti(calib["P_rect_02"], w, h, "camera2_optical", w / w0, h / h0)


class Player(Bench):
    """node_latency's publisher (frames + CameraInfo, depth arrival times in ``arrivals``), also recording
    which of the other outputs arrived for each input stamp."""

    OTHERS = ("depth_info", "colored", "points")

    def __init__(self, frames, info):
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from md2_ros.ros.topics import topic_names
        super().__init__(frames, info, all_outputs=False)
        self.seen: dict[int, set] = {}
        names = topic_names("")
        for key, typ in zip(self.OTHERS, (CameraInfo, Image, PointCloud2)):
            self.node.create_subscription(typ, "/depth_node/" + names[key][2:], self._recorder(key), 10)

    def _recorder(self, key):
        def cb(msg):
            with self.lock:
                self.seen.setdefault(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, set()).add(key)
        return cb

    def connected(self) -> bool:
        return super().connected() and all(s.get_publisher_count() > 0 for s in self.node.subscriptions)

    def complete(self, stamp) -> bool:
        with self.lock:
            return stamp in self.arrivals and len(self.seen.get(stamp, ())) == len(self.OTHERS)

    def wait_complete(self, stamp, timeout) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.complete(stamp):
                return True
            time.sleep(0.0005)
        return False


def gpu_mib(pid: int) -> float | None:
    """GPU memory (MiB) used by ``pid`` per nvidia-smi, or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        p, _, mem = line.partition(",")
        if p.strip() == str(pid):
            return float(mem)
    return None


def window_report(player, stamps, proc, done: int) -> dict:
    import psutil
    with player.lock:
        lat = np.array([(player.arrivals[s] - s) / 1e6 for s in stamps if s in player.arrivals])
    complete = sum(player.complete(s) for s in stamps)
    p = psutil.Process(proc.pid)
    row = {"frames": done, "sent": len(stamps), "complete": complete, "dropped": len(stamps) - complete,
           "rss_mb": p.memory_info().rss / 2 ** 20,
           "fds": p.num_fds(), "threads": p.num_threads(), "gpu_mib": gpu_mib(proc.pid),
           "mean_ms": float(lat.mean()) if len(lat) else float("nan"),
           "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
           "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan")}
    gpu = "n/a" if row["gpu_mib"] is None else f"{row['gpu_mib']:.0f}"
    print(f"| {done} | {row['sent']} | {complete} | {row['dropped']} | {row['mean_ms']:.1f} | {row['p50_ms']:.1f} | "
          f"{row['p95_ms']:.1f} | {row['rss_mb']:.1f} | {gpu} | {row['fds']} | {row['threads']} |", flush=True)
    return row


def start_node(tmp: pathlib.Path, args) -> subprocess.Popen:
    import yaml

    from md2_ros.core.model import DepthModel
    nw, nh = (int(x) for x in args.net_size.lower().split("x"))
    DepthModel(num_layers=18, height=nh, width=nw).save(tmp / "random.safetensors")
    params = {"model_path": str(tmp / "random.safetensors"), "device": args.device, "backend": args.backend,
              "torch_threads": args.torch_threads, "diagnostics_period": 1.0}
    (tmp / "p.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    log = open(tmp / "node.log", "w")
    return subprocess.Popen([sys.executable, "-m", "md2_ros.ros.run", "--params-file", str(tmp / "p.yaml")],
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)


def play(player, proc, args) -> list[dict]:
    print("| frames | sent | complete | dropped | latency mean ms | p50 | p95 | node RSS MB | GPU MiB | fds | threads |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows, stamps, t0 = [], [], time.monotonic()
    for i in range(args.frames):
        if proc.poll() is not None:
            raise SystemExit(f"the node exited ({proc.returncode}) after {i} frames")
        if args.rate > 0:
            delay = t0 + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamps.append(player.send(i))
        else:
            stamps.append(player.send(i))
            player.wait_complete(stamps[-1], args.timeout)
        if (i + 1) % args.every == 0 or i + 1 == args.frames:
            if args.rate > 0:
                time.sleep(1.0)
            rows.append(window_report(player, stamps, proc, i + 1))
            stamps = []
    return rows


def verdict(rows: list[dict]) -> bool:
    first, last = rows[0], rows[-1]
    growth = (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"]
    drift = last["mean_ms"] / first["mean_ms"] if first["mean_ms"] > 0 else float("nan")
    dropped, sent = sum(r["dropped"] for r in rows), sum(r["sent"] for r in rows)
    ok = growth < RSS_LIMIT
    print(f"\nRSS {first['rss_mb']:.1f} MB (after {first['frames']} frames) -> {last['rss_mb']:.1f} MB "
          f"(after {last['frames']}): growth {100 * growth:+.2f} %")
    print(f"latency drift (last window mean / first): {drift:.2f}x; dropped {dropped} of {sent} "
          f"({100 * dropped / max(sent, 1):.2f} %); fds {first['fds']} -> {last['fds']}, threads "
          f"{first['threads']} -> {last['threads']}")
    print(f"pass criterion: RSS growth < {100 * RSS_LIMIT:.0f} % -> {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--every", type=int, default=500, help="frames per report window")
    ap.add_argument("--size", default="192x64", help="published image WxH")
    ap.add_argument("--net-size", default="192x64", help="WxH of the random-weight network")
    ap.add_argument("--source", choices=["synthetic", "kitti"], default="synthetic")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="eager", help="the node's backend parameter (auto builds candidates first)")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0, help="open loop at this rate (Hz); 0 = closed loop")
    ap.add_argument("--timeout", type=float, default=5.0, help="closed loop: seconds before a frame counts as dropped")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="seconds for the node to come up")
    args = ap.parse_args(argv)
    if args.frames < 2 * args.every:
        raise SystemExit("--frames must cover at least two report windows (2 x --every)")
    if min(int(x) for x in args.net_size.lower().split("x")) < 64:
        raise SystemExit("--net-size: at least 64 px per side (the encoder's 1/32 feature map needs 2 px)")
    from md2_ros.ros.transport import configure_fastdds
    configure_fastdds()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    w, h = (int(x) for x in args.size.lower().split("x"))
    frames, info = (synthetic_frames if args.source == "synthetic" else kitti_frames)(w, h)
    print(f"soak: {args.frames} frames of a looping {len(frames)}-frame {args.source} sequence at {w}x{h}, "
          f"network {args.net_size}, {args.device}, backend {args.backend}, torch threads {args.torch_threads}, "
          f"{'closed loop' if args.rate <= 0 else f'{args.rate:g} Hz open loop'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="md2_soak_") as tmp:
        proc = start_node(pathlib.Path(tmp), args)
        player = Player(frames, info)
        try:
            end = time.monotonic() + args.startup_timeout
            while not player.connected() and time.monotonic() < end and proc.poll() is None:
                time.sleep(0.1)
            if not player.connected():
                raise SystemExit("node did not come up:\n" + (pathlib.Path(tmp) / "node.log").read_text())
            rows = play(player, proc, args)
        finally:
            player.close()
            stop_node(proc)
    return 0 if verdict(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
