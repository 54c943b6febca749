"""Write an image sequence with camera poses as a ROS 2 bag with an odometry topic (no ROS needed).

    python -m train.sequence_bag OUT.mcap --kitti-odom SEQ_DIR --poses POSES.txt [--frames 0:51] [--size 192x640]
    python -m train.sequence_bag OUT.mcap --synthetic 24 [--size 96x320]

Topics: ``<prefix>/image_raw`` (``sensor_msgs/Image``, rgb8), ``<prefix>/camera_info`` (pinhole, zero
distortion) and ``/odom`` (``nav_msgs/Odometry``: pose = the camera pose in the first camera's frame,
twist = the velocity from central differences of the positions, in the camera's own frame). This is
the robot path of velocity supervision: a bag that trains with ``velocity_weight`` > 0 is one a robot
records. KITTI odometry sequences (``image_0/*.png`` grey, ``calib.txt`` with ``P0`` rows, 10 Hz) and the
synthetic scene (:mod:`md2_ros.synthetic`) are the two sources.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

T0_NS = 1_317_000_000 * 1_000_000_000
PERIOD_NS = 100_000_000      # 10 Hz


def velocities(stamps_ns, poses) -> np.ndarray:
    """(N, 3) camera-frame linear velocities (m/s) from central differences of the positions."""
    t = np.asarray(stamps_ns, dtype=np.float64) / 1e9
    p = np.asarray(poses)[:, :3, 3]
    v_world = np.gradient(p, t, axis=0) if len(t) > 1 else np.zeros_like(p)
    return np.einsum("nji,nj->ni", np.asarray(poses)[:, :3, :3], v_world)   # R^T v


def _quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix."""
    w = np.sqrt(max(0.0, 1.0 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return float(x), float(y), float(z), float(w)


def odometry_message(T, header, pose: np.ndarray, velocity: np.ndarray, child_frame_id: str):
    """A rosbags nav_msgs/Odometry (covariances zero) for a 4×4 pose and a camera-frame velocity."""
    x, y, z, w = _quaternion(pose[:3, :3])
    vec = T["geometry_msgs/msg/Vector3"]
    return T["nav_msgs/msg/Odometry"](
        header=header, child_frame_id=child_frame_id,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](*map(float, pose[:3, 3])),
                                             orientation=T["geometry_msgs/msg/Quaternion"](x, y, z, w)),
            covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vec(*map(float, velocity)), angular=vec(0.0, 0.0, 0.0)),
            covariance=np.zeros(36)))


def _header(T, stamp: int, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                                           nanosec=stamp % 10**9), frame_id=frame_id)


def write_sequence_bag(out, images, K, stamps_ns, poses=None, *, topic_prefix: str = "/camera",
                       odom_topic: str = "/odom", frame_id: str = "camera_optical_frame",
                       overwrite: bool = False) -> dict:
    """Write images (H×W×3 uint8 RGB arrays, or a callable i -> array), CameraInfo from K (3×3 pixels) and,
    with ``poses`` (N 4×4 camera->world), an Odometry topic, all stamped ``stamps_ns``. Returns counts."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (pass overwrite=True)")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    if out.suffix != ".mcap":
        raise ValueError(f"write_sequence_bag writes a single .mcap file, got {out}")
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    n = len(stamps_ns)
    vel = velocities(stamps_ns, poses) if poses is not None else None
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    counts = {}
    try:
        with Writer(tmp, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            img_c = writer.add_connection(f"{topic_prefix}/image_raw", "sensor_msgs/msg/Image", typestore=ts)
            info_c = writer.add_connection(f"{topic_prefix}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
            odom_c = writer.add_connection(odom_topic, "nav_msgs/msg/Odometry", typestore=ts) if vel is not None else None
            for i in range(n):
                rgb = images(i) if callable(images) else images[i]
                h, w = rgb.shape[:2]
                stamp = int(stamps_ns[i])
                head = _header(T, stamp, frame_id)
                img = T["sensor_msgs/msg/Image"](header=head, height=h, width=w, encoding="rgb8", is_bigendian=0,
                                                 step=w * 3, data=np.ascontiguousarray(rgb).reshape(-1))
                P = np.hstack([np.asarray(K, np.float64)[:3, :3], np.zeros((3, 1))])
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=head, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=P[:, :3].reshape(-1),
                    r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                               do_rectify=False))
                writer.write(img_c, stamp, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
                writer.write(info_c, stamp, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
                if odom_c is not None:
                    odom = odometry_message(T, _header(T, stamp, "odom"), np.asarray(poses[i]), vel[i], frame_id)
                    writer.write(odom_c, stamp, ts.serialize_cdr(odom, "nav_msgs/msg/Odometry"))
        (storage,) = [p for p in tmp.iterdir() if p.suffix == ".mcap"]
        os.replace(storage, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    counts = {"frames": n, "odometry": n if poses is not None else 0}
    return {"path": str(out), **counts}


def read_odometry_calib(seq_dir) -> np.ndarray:
    """K (3×3) of camera 0 from a KITTI odometry ``calib.txt`` (first row ``P0: ...`` or 12 bare numbers)."""
    path = Path(seq_dir) / "calib.txt"
    for line in path.read_text().splitlines():
        values = line.split(":", 1)[-1].split()
        if len(values) == 12:
            return np.array(values, dtype=np.float64).reshape(3, 4)[:, :3]
    raise ValueError(f"{path}: no line of 12 numbers (P0)")


def kitti_odometry_sequence(seq_dir, poses_file, frames: slice = slice(None), size: tuple | None = None):
    """(image loader i -> RGB, K for the loaded size, stamps at 10 Hz, poses) of a KITTI odometry sequence."""
    from train.evaluate_pose import read_kitti_poses

    seq_dir = Path(seq_dir)
    paths = sorted((seq_dir / "image_0").glob("*.png"))
    poses = read_kitti_poses(poses_file)
    if not paths or len(paths) != len(poses):
        raise ValueError(f"{seq_dir}: {len(paths)} images in image_0 but {len(poses)} poses in {poses_file}")
    idx = list(range(len(paths)))[frames]
    K = read_odometry_calib(seq_dir)
    h0, w0 = cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE).shape
    if size is not None:
        K = K.copy()
        K[0] *= size[1] / w0
        K[1] *= size[0] / h0

    def load(i):
        grey = cv2.imread(str(paths[idx[i]]), cv2.IMREAD_GRAYSCALE)
        if size is not None:
            grey = cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    stamps = T0_NS + np.asarray(idx, dtype=np.int64) * PERIOD_NS
    return load, K, stamps, poses[idx]


def chain_sequences(parts: list) -> tuple:
    """Concatenate (loader, K, stamps, poses) sequences, each 1000 s after the previous one's start; the
    odometry gap between them keeps every pair inside one sequence. Intrinsics: the first sequence's
    (the others must agree within 1 %: one CameraInfo per bag topic)."""
    K = parts[0][1]
    for _, Ki, _, _ in parts[1:]:
        if np.abs(Ki - K).max() > 0.01 * K[0, 0]:
            raise ValueError(f"sequences have different intrinsics ({Ki.round(1).tolist()} vs {K.round(1).tolist()})")
    index = [(p, i) for p, part in enumerate(parts) for i in range(len(part[2]))]
    stamps = np.concatenate([part[2] + p * 1000 * 10**9 for p, part in enumerate(parts)])
    poses = np.concatenate([part[3] for part in parts])
    return (lambda k: parts[index[k][0]][0](index[k][1])), K, stamps, poses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.sequence_bag", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .mcap file")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--kitti-odom", action="append", help="KITTI odometry sequence folder (image_0/, calib.txt); "
                     "repeat (with one --poses each) to chain sequences, 1000 s apart, with the first one's intrinsics")
    src.add_argument("--synthetic", type=int, help="render this many frames of the synthetic scene")
    ap.add_argument("--poses", action="append", help="poses file for each --kitti-odom (KITTI odometry format)")
    ap.add_argument("--frames", default=":", help="python slice of the frames, e.g. 0:40")
    ap.add_argument("--size", default=None, help="HxW to resize the images to (default: as stored; synthetic 96x320)")
    ap.add_argument("--no-odometry", action="store_true", help="leave the odometry topic out")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    try:
        size = tuple(int(v) for v in a.size.lower().split("x")) if a.size else None
        frames = slice(*[int(v) if v else None for v in a.frames.split(":")])
        if a.kitti_odom:
            if len(a.poses or []) != len(a.kitti_odom):
                raise ValueError("give one --poses per --kitti-odom")
            images, K, stamps, poses = chain_sequences([kitti_odometry_sequence(d, p, frames, size)
                                                        for d, p in zip(a.kitti_odom, a.poses)])
        else:
            from md2_ros.synthetic import render_sequence
            seq = render_sequence(a.synthetic, *(size or (96, 320)))
            images, K, poses = seq.images[frames], seq.K, np.asarray(seq.poses)[frames]
            stamps = T0_NS + np.arange(len(images), dtype=np.int64) * PERIOD_NS
        info = write_sequence_bag(a.out, images, K, stamps, None if a.no_odometry else poses, overwrite=a.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"sequence_bag: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {info['path']}: {info['frames']} frames, {info['odometry']} odometry messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
