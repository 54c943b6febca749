"""Turn a KITTI raw drive into a ROS 2 bag (no ROS needed; written with `rosbags`).

    python -m train.make_bag KITTI_DRIVE_OR_DATE_DIR OUT [--compressed] [--format png|jpeg] [--rate 10]
                             [--camera 2] [--stereo] [--topic-prefix /camera] [--frames A:B] [--storage mcap|sqlite3]

OUT ending in ``.mcap`` or ``.db3`` gives that single storage file (both readable by rosbags and by
``ros2 bag play``); any other name gives a rosbag2 folder (``metadata.yaml`` + storage file,
``--storage`` picks the format, mcap by default).

Topics (mono): ``<prefix>/image_raw`` (``sensor_msgs/msg/Image``, rgb8) or
``<prefix>/image_raw/compressed`` (``CompressedImage``; PNG is lossless: the KITTI file bytes are
copied as they are), and ``<prefix>/camera_info``. With ``--stereo``: ``<prefix>/left/...`` from
camera 2 and ``<prefix>/right/...`` from camera 3.

CameraInfo: the images are KITTI's rectified images, so distortion is ``plumb_bob`` with zero
coefficients, R = identity, K = P_rect_0x[:3,:3] scaled from ``S_rect_0x`` to the actual image size, and
P = [K | t] with t = 0 for a mono or left camera and ``-fx * B`` for the right one (ROS convention;
B = baseline from P_rect_02/03). KITTI's tiny y/z offsets in P_rect are dropped.

Stamps: from ``image_0x/timestamps.txt`` when present, else ``t0 + frame_number / rate`` (t0 = 2011-09-26,
later drives of a date folder 1000 s apart), used for both header stamp and bag time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from md2_ros.io import kitti as kcalib
from md2_ros.io.bags import COMPRESSED_TYPE, IMAGE_TYPE, INFO_TYPE, make_header, typestore
from md2_ros.io.intrinsics import scale_intrinsics
from md2_ros.io.kitti import find_drives, read_timestamps
from md2_ros.io.images import read_image_file

__all__ = ["camera_info_matrices", "write_kitti_bag", "main"]

T0_NS = 1_317_000_000 * 1_000_000_000


def camera_info_matrices(P_rect: np.ndarray, rect_size: tuple[int, int], image_size: tuple[int, int],
                         tx_metres: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, P 3x4) in pixels of ``image_size`` from a KITTI ``P_rect`` for ``rect_size``; P[0,3] = -fx * tx."""
    K = scale_intrinsics(np.asarray(P_rect)[:3, :3], rect_size, image_size)
    K[2] = [0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    P[0, 3] = -K[0, 0] * tx_metres
    return K, P


def _frames(drive: Path, cam: int) -> dict[int, Path]:
    d = drive / f"image_0{cam}" / "data"
    if not d.is_dir():
        raise FileNotFoundError(f"no image folder {d}")
    return {int(p.stem): p for p in sorted(d.iterdir()) if p.stem.isdigit() and p.suffix.lower() in (".png", ".jpg", ".jpeg")}


def _output(out: Path, overwrite: bool, storage: str):
    """(storage plugin, single-file?, folder rosbags writes into) for ``out``; clears ``out`` if allowed."""
    from rosbags.rosbag2 import StoragePlugin

    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (pass --overwrite)")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    single = out.suffix in (".mcap", ".db3")
    plugin = {"mcap": StoragePlugin.MCAP, ".mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3,
              ".db3": StoragePlugin.SQLITE3}[out.suffix if single else storage]
    return plugin, single, out.with_name(out.name + f".tmp{os.getpid()}") if single else out


def _image_msg(T, header, path: Path, rgb: np.ndarray, compressed: bool, fmt: str):
    if not compressed:
        h, w = rgb.shape[:2]
        return T[IMAGE_TYPE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                             data=rgb.reshape(-1))
    same = path.suffix.lower() == (".png" if fmt == "png" else ".jpg")
    data = np.fromfile(path, dtype=np.uint8) if same else np.frombuffer(
        cv2.imencode("." + fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes(), np.uint8)
    return T[COMPRESSED_TYPE](header=header, format=f"rgb8; {fmt} compressed bgr8", data=data)


def _info_msg(T, header, P_rect, rect_size, width: int, height: int, tx: float):
    K, P = camera_info_matrices(P_rect, rect_size, (width, height), tx)
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T[INFO_TYPE](header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
                        k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


class _BagOut:
    """The open writer with one image and one CameraInfo connection per camera, and message counts."""

    def __init__(self, writer, ts, cams: list, prefix: str, stereo: bool, compressed: bool):
        self.writer, self.ts, self.counts, self.conns = writer, ts, {}, {}
        names = {2: "left", 3: "right"} if stereo else {c: None for c in cams}
        for c in cams:
            ns = prefix + (f"/{names[c]}" if names[c] else "")
            img = (ns + ("/image_raw/compressed" if compressed else "/image_raw"),
                   COMPRESSED_TYPE if compressed else IMAGE_TYPE)
            self.conns[c] = [(topic, typ, writer.add_connection(topic, typ, typestore=ts))
                             for topic, typ in (img, (ns + "/camera_info", INFO_TYPE))]

    def write(self, cam: int, stamp: int, image, info) -> None:
        for (topic, typ, conn), msg in zip(self.conns[cam], (image, info)):
            self.writer.write(conn, stamp, self.ts.serialize_cdr(msg, typ))
            self.counts[topic] = self.counts.get(topic, 0) + 1


def _write_drive(bag: _BagOut, drive: Path, d_idx: int, cams: list, opts: dict) -> int:
    """Every frame all ``cams`` have (``opts["frames"]`` slice) of one drive; returns the frame count."""
    cal_dir, T = drive.parent, bag.ts.types
    per_cam = {c: _frames(drive, c) for c in cams}
    ids = sorted(set.intersection(*(set(v) for v in per_cam.values())))
    ids = ids[slice(*opts["frames"])] if opts["frames"] is not None else ids
    baseline = kcalib.stereo_baseline(cal_dir) if opts["stereo"] else 0.0
    setup = {}
    for c in cams:
        ts_file = drive / f"image_0{c}" / "timestamps.txt"
        setup[c] = (read_timestamps(ts_file) if ts_file.exists() else None,
                    kcalib.load_cam_intrinsics(cal_dir, c), kcalib.load_image_size(cal_dir, c))
    for fid in ids:
        for c in cams:
            stamps, P_rect, rect_size = setup[c]
            rgb = read_image_file(per_cam[c][fid])
            stamp = stamps[fid] if stamps is not None and fid < len(stamps) else \
                T0_NS + d_idx * 1000 * 10**9 + int(round(fid * 1e9 / opts["rate"]))
            header = make_header(T, stamp, f"camera{c}_optical_frame")
            tx = baseline if (opts["stereo"] and c == 3) else 0.0
            bag.write(c, stamp, _image_msg(T, header, per_cam[c][fid], rgb, opts["compressed"], opts["fmt"]),
                      _info_msg(T, header, P_rect, rect_size, rgb.shape[1], rgb.shape[0], tx))
    return len(ids)


def write_kitti_bag(src, out, *, compressed: bool = False, fmt: str = "png", rate: float = 10.0, camera: int = 2,
                    stereo: bool = False, topic_prefix: str = "/camera", frames: tuple | None = None,
                    storage: str = "mcap", overwrite: bool = False) -> dict:
    """Write the bag (see module docstring). Returns {"path", "topics": {topic: count}, "frames"}."""
    from rosbags.rosbag2 import Writer

    out = Path(out)
    if fmt not in ("png", "jpeg"):
        raise ValueError(f"format must be png or jpeg, got {fmt!r}")
    plugin, single, tmp_dir = _output(out, overwrite, storage)
    cams = [2, 3] if stereo else [camera]
    opts = {"frames": frames, "stereo": stereo, "rate": rate, "compressed": compressed, "fmt": fmt}
    drives = find_drives(Path(src))
    n_frames = 0
    try:
        with Writer(tmp_dir, version=9, storage_plugin=plugin) as writer:
            bag = _BagOut(writer, typestore(), cams, topic_prefix.rstrip("/"), stereo, compressed)
            for d_idx, drive in enumerate(drives):
                n_frames += _write_drive(bag, drive, d_idx, cams, opts)
        if single:
            (storage_file,) = [p for p in tmp_dir.iterdir() if p.suffix == out.suffix]
            os.replace(storage_file, out)
    finally:
        if single and tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    if n_frames == 0:
        raise ValueError(f"no frames written from {src} (cameras {cams}, frames {frames})")
    return {"path": str(out), "topics": bag.counts, "frames": n_frames}


def _slice(text: str) -> tuple:
    a, _, b = text.partition(":")
    return (int(a) if a else None, int(b) if b else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.make_bag", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python -m train.make_bag /data/kitti_raw/2011_09_26/"
                                        "2011_09_26_drive_0001_sync drive1.mcap --compressed\n\nexit status: 0 ok, 1 an input cannot be used (the message names it), 2 usage error.")
    ap.add_argument("src", help="KITTI raw drive folder (<date>/<drive>_sync) or date folder")
    ap.add_argument("out", help="out.mcap | out.db3 (single file) or a folder name (rosbag2 folder)")
    ap.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage")
    ap.add_argument("--format", default="png", choices=["png", "jpeg"], help="compression (default png, lossless)")
    ap.add_argument("--rate", type=float, default=10.0, help="Hz for stamps when timestamps.txt is absent")
    ap.add_argument("--camera", type=int, default=2, choices=[0, 1, 2, 3], help="KITTI camera (mono)")
    ap.add_argument("--stereo", action="store_true", help="cameras 2 and 3 under <prefix>/left and /right")
    ap.add_argument("--topic-prefix", default="/camera")
    ap.add_argument("--frames", type=_slice, default=None, help="python slice of the frames, e.g. 0:40")
    ap.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"], help="for a folder OUT")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    try:
        info = write_kitti_bag(a.src, a.out, compressed=a.compressed, fmt=a.format, rate=a.rate, camera=a.camera,
                               stereo=a.stereo, topic_prefix=a.topic_prefix, frames=a.frames, storage=a.storage,
                               overwrite=a.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        print(f"make_bag: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {info['path']}: {info['frames']} frames; " +
          ", ".join(f"{t} ({n})" for t, n in info["topics"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
