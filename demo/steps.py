"""The demo's steps, each a small function (see :mod:`md2_ros.demo` for the flow).

Needs a checkout (it uses ``train/``, which is not installed) and, for the node step,
the ROS 2 PyPI wheels (``pip install -e '.[ros]'``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti_mini"


def pick_data(data: str | None, out: Path, synthetic: bool = False, synth_frames: int = 40,
              synth_size: tuple = (192, 640)) -> tuple[Path, str]:
    """-> (KITTI drive folder, "kitti" | "synthetic"). ``--data`` wins, then ../shared's sample, then
    the synthetic scene (also when ``synthetic`` is set)."""
    from md2_ros.io.kitti import find_drives

    if data and not synthetic:
        root = Path(data).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--data {root}: no such folder")
        return find_drives(root)[0], "kitti"
    if SHARED_SAMPLE.is_dir() and not synthetic:
        return find_drives(SHARED_SAMPLE)[0], "kitti"
    from md2_ros.synthetic import render_sequence, write_kitti_layout

    print(f"[demo] {'synthetic requested' if synthetic else f'{SHARED_SAMPLE} not found'}: rendering the built-in synthetic scene "
          f"({synth_frames} frames {synth_size[1]}x{synth_size[0]}) …", flush=True)
    seq = render_sequence(num_frames=synth_frames, height=synth_size[0], width=synth_size[1], seed=0)
    return write_kitti_layout(seq, out / "synthetic"), "synthetic"


def make_bag(drive: Path, out: Path) -> Path:
    """The drive as a ROS 2 bag (CompressedImage PNG + CameraInfo), like a robot would record it."""
    from train.make_bag import write_kitti_bag

    bag = out / "camera.mcap"
    info = write_kitti_bag(drive, bag, compressed=True, overwrite=True)
    print(f"[demo] bag: {bag} {info['topics']}", flush=True)
    return bag


def train_on_bag(bag: Path, out: Path, steps: int, height: int, width: int, batch: int, device: str,
                 stride: int = 2) -> Path:
    """Self-supervised monocular training on the bag for a bounded number of steps."""
    from train.config import load_config
    from train.data import build_dataset
    from train.trainer import Trainer

    cfg = load_config(None, [f"data.kind=rosbag", f"data.path={bag}", "data.image_topic=/camera/image_raw/compressed",
                             "data.camera_info_topic=/camera/camera_info", "data.num_workers=0",
                             f"height={height}", f"width={width}", f"batch_size={batch}", f"max_steps={steps}", f"data.stride={stride}",
                             "learning_rate=0.0002", "num_epochs=1000", f"log_dir={out / 'train'}",
                             "save_every=0", "epoch_checkpoints=false", "image_every=0", f"device={device}"])
    dataset = build_dataset(cfg, is_train=True)
    print(f"[demo] training {steps} steps at {width}x{height}, batch {batch}, on {len(dataset)} triplets "
          f"(static frames filtered: {getattr(dataset, 'stats', {})})", flush=True)
    t0 = time.time()
    summary = Trainer(cfg, dataset).train()
    first = float(np.mean(summary["losses"][:20]))
    last = float(np.mean(summary["losses"][-20:]))
    print(f"[demo] trained in {time.time() - t0:.0f} s: photometric loss {first:.4f} -> {last:.4f} "
          f"(mean of first/last 20 steps)", flush=True)
    return Path(summary["exported"])


def run_node(model_path: Path, bag: Path, device: str, timeout_s: float = 60.0,
             camera_height: float = 0.0) -> tuple[list, dict]:
    """Play the bag into the real rclpy depth node (in-process, lifecycle) and collect its outputs.

    Frames are published one at a time, each after the previous depth arrived, so none is dropped.
    Returns ([(stamp_ns, depth H×W float32, colored bgr or None)], {"cloud": (xyz, rgb) of the last frame,
    "K": published depth camera_info K, "stamps_ok": bool}).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    from md2_ros.ros.conversions import cloud_to_numpy, image_to_numpy
    from md2_ros.ros.depth_node import DepthNode

    store = get_typestore(Stores.ROS2_JAZZY)
    msgs = []
    with AnyReader([bag], default_typestore=store) as reader:
        for conn, _t, raw in reader.messages():
            msgs.append((conn.topic, reader.deserialize(raw, conn.msgtype)))
    from md2_ros.ros.transport import configure_fastdds

    configure_fastdds()  # the player publishes 1242×375 images: give Fast DDS a big enough SHM segment
    rclpy.init()
    results, extra = [], {"stamps_ok": True}
    try:
        node = DepthNode("depth_node", parameter_overrides=[
            Parameter("model_path", value=str(model_path)), Parameter("device", value=device),
            Parameter("use_compressed", value=True), Parameter("camera_height", value=float(camera_height))])
        io = rclpy.create_node("demo_player")
        pub_img = io.create_publisher(CompressedImage, "image_raw/compressed", 10)
        pub_info = io.create_publisher(CameraInfo, "camera_info", 10)
        got: dict = {}   # (kind, stamp_ns) -> message; keyed by stamp so a late duplicate can't be mistaken

        def keep(kind):
            return lambda m: got.__setitem__((kind, _ns(m.header.stamp)), m)

        io.create_subscription(Image, "/depth_node/depth", keep("depth"), 10)
        io.create_subscription(Image, "/depth_node/depth_colored", keep("colored"), 10)
        io.create_subscription(PointCloud2, "/depth_node/points", keep("points"), 10)
        io.create_subscription(CameraInfo, "/depth_node/depth/camera_info", keep("info"), 10)
        ex = MultiThreadedExecutor()
        ex.add_node(node)
        ex.add_node(io)
        deadline = time.time() + 10
        while node.count_subscribers("image_raw/compressed") == 0 and time.time() < deadline:
            ex.spin_once(timeout_sec=0.05)
        info = None
        for topic, m in msgs:
            if topic.endswith("camera_info"):
                info = _to_ros(m, CameraInfo)
                continue
            img = _to_ros(m, CompressedImage)
            stamp = _ns(img.header.stamp)
            t_end = time.time() + timeout_s
            while ("depth", stamp) not in got and time.time() < t_end:
                if info is not None:
                    pub_info.publish(info)
                pub_img.publish(img)  # best-effort input: re-send until this stamp's depth comes back
                t_wait = time.time() + 0.5
                while ("depth", stamp) not in got and time.time() < t_wait:
                    ex.spin_once(timeout_sec=0.02)
            if ("depth", stamp) not in got:
                raise RuntimeError(f"the depth node produced no output within {timeout_s:.0f} s for stamp {stamp}")
            t_more = time.time() + 1.0  # colored/points come right after depth
            while (("points", stamp) not in got or ("colored", stamp) not in got) and time.time() < t_more:
                ex.spin_once(timeout_sec=0.02)
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
        extra["stamps_ok"] &= len(results) == len({r[0] for r in results})
        ex.shutdown()
        node.trigger_deactivate()  # lifecycle: stops the worker thread before the node goes away
        node.destroy_node()
        io.destroy_node()
    finally:
        rclpy.try_shutdown()
    return results, extra


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


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


def ground_truth(drive: Path, kind: str, frame_ids: list[int]) -> dict:
    """{frame: GT depth} — velodyne (KITTI) for frames that have a scan, exact depth for the synthetic scene."""
    gt = {}
    if kind == "synthetic":
        for f in frame_ids:
            p = drive / "gt_depth" / f"{f:010d}.npy"
            if p.exists():
                gt[f] = np.load(p)
        return gt
    from train.export_gt_depth import velodyne_depth

    root, folder = drive.parent.parent, f"{drive.parent.name}/{drive.name}"
    for f in frame_ids:
        if (drive / "velodyne_points" / "data" / f"{f:010d}.bin").exists():
            gt[f] = velodyne_depth(root, folder, f, 2)
    return gt


def untrained_baseline(model_path: Path, paths: dict, frames: list, gt: dict, crop: str) -> dict:
    """Eigen metrics of the trained model's architecture with random weights (seed 0), as a reference row."""
    import torch

    from md2_ros.core.model import DepthModel
    from train.evaluate_depth import evaluate

    trained = DepthModel.load(model_path, device="cpu")
    torch.manual_seed(0)
    model = DepthModel.from_config(trained.config).setup_inference("cpu")
    preds = []
    for f in frames:
        bgr = cv2.imread(str(paths[f]))
        preds.append(model.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return evaluate([gt[f] for f in frames], preds, pred_type="depth", median_scaling=True, crop=crop)


def contact_sheet(rgbs: list, colors: list, path: Path, cols: int = 2, width: int = 620) -> None:
    """Rows of (camera image | colorized depth) pairs."""
    tiles = []
    for rgb, col in zip(rgbs, colors):
        h = int(round(rgb.shape[0] * width / rgb.shape[1]))
        a = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (width, h), interpolation=cv2.INTER_AREA)
        b = cv2.resize(col, (width, h), interpolation=cv2.INTER_NEAREST)
        tiles.append(np.vstack([a, b, np.zeros((6, width, 3), np.uint8)]))
    rows = [np.hstack(tiles[i:i + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[i:i + cols])))
            for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), np.vstack(rows))


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float))
