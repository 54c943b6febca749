"""Decode a bag's image topic once into a frame cache beside the bag (used by `rosbag.RosbagDataset`).

Reading a bag at random positions from many DataLoader workers is slow and fragile (each worker
would need its own reader, and ``.db3``/``.mcap`` random access differs), so the first time a bag is
used every image of the chosen topic is decoded (in a thread pool), rectified if asked, resized to
the training size and written to a ``.npy`` memory map; workers then read rows from it. It costs
``frames x height x width x 3`` bytes of disk (640x192: 369 kB a frame, 3.7 GB per 10,000 frames).
Small thumbnails (160 pixels wide, from the full image) are kept too, for static-frame filtering.
A message that cannot be decoded is logged, counted and left out (a gap in the sequence); if none can
be decoded (e.g. an unsupported encoding) `BagError` says why. The index records each cache file's size
and CRC-32 (`file_digest`); a file that no longer matches (truncated, zeroed, overwritten) is rebuilt
(`cache_damage`; checking reads the cache once, about 1 s per 4 GB once it is in the page cache).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import os
import re
import zlib
from pathlib import Path

import cv2
import numpy as np

from md2_ros.core.checkpoint import pid_alive
from md2_ros.io.bags import (BagReadError, TopicChoiceError, choose_image_topic, choose_info_topic, list_topics,
                             open_reader)
from md2_ros.io.images import ImageDecodeError, decode_image_msg
from md2_ros.io.stamps import stamp_ns

from .base import resize_rgb
from md2_ros.io.intrinsics import CameraModel, camera_model

__all__ = ["BagError", "open_bag", "bag_fingerprint", "list_topics", "resolve_topics", "read_camera",
           "decode_topic", "THUMB_WIDTH", "file_digest", "cache_damage", "remove_stale_cache_temps"]

THUMB_WIDTH = 160
log = logging.getLogger(__name__)


class BagError(RuntimeError):
    """A bag cannot be used: unreadable, truncated, empty, or without the needed topics."""


def file_digest(path: Path, chunk: int = 16 << 20) -> dict:
    """{"size": bytes, "crc32": CRC-32 of the whole content} of a cache file."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return {"size": path.stat().st_size, "crc32": crc}


def cache_damage(path: Path, expected: dict | None) -> str | None:
    """Why the cache file at ``path`` cannot be trusted against its recorded digest, or None if intact."""
    if not expected:
        return "no size/checksum recorded"
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != expected["size"]:
        return f"{size} bytes instead of {expected['size']} (truncated?)"
    if file_digest(path)["crc32"] != expected["crc32"]:
        return "checksum mismatch (zeroed, overwritten or corrupt)"
    return None


def remove_stale_cache_temps(cache_dir: Path, bag_name: str) -> None:
    """Delete frame-cache temp files (``*.npy.tmp<pid>``) that a killed decoder left for this bag."""
    for tmp in cache_dir.glob(f"{bag_name}.md2*.tmp*"):
        m = re.search(r"\.tmp(\d+)$", tmp.name)
        if m and not pid_alive(int(m.group(1))):
            tmp.unlink(missing_ok=True)


def bag_fingerprint(path: Path) -> list:
    """[[name, size, mtime_ns], ...] of the bag file, or of every file inside a bag folder (except our caches)."""
    files = sorted(p for p in path.iterdir() if p.is_file() and ".md2" not in p.name) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def open_bag(path: Path):
    """Open a bag (``.mcap``, ``.db3`` file or rosbag2 folder) with `md2_ros.io.bags.open_reader`; BagError
    on failure."""
    try:
        return open_reader(path)
    except BagReadError as exc:
        raise BagError(str(exc)) from exc.__cause__


def resolve_topics(reader, path: Path, image_topic: str | None, info_topic: str | None) -> tuple[str, str]:
    """Pick / check the image and CameraInfo topics; BagError naming the bag and topic on any problem."""
    topics = list_topics(reader)
    if not topics or sum(n for _, n in topics.values()) == 0:
        raise BagError(f"bag {path} is empty (no messages)")
    try:
        image_topic = choose_image_topic(topics, f"bag {path}", image_topic, hint="pass image_topic")
        if topics[image_topic][1] == 0:
            raise BagError(f"topic {image_topic} in bag {path} has no messages")
        info_topic = choose_info_topic(topics, f"bag {path}", image_topic, info_topic, hint="pass camera_info_topic")
    except TopicChoiceError as exc:
        raise BagError(str(exc)) from exc
    return image_topic, info_topic


def _messages(reader, topic: str, path: Path):
    conns = [c for c in reader.connections if c.topic == topic]
    try:
        for conn, t, raw in reader.messages(connections=conns):
            yield conn, t, raw
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"error reading {topic} from bag {path}: {type(exc).__name__}: {exc} "
                       "(truncated or corrupt file?)") from exc


def read_camera(reader, path: Path, info_topic: str) -> CameraModel:
    """The first CameraInfo message on ``info_topic`` (intrinsics are assumed constant)."""
    for conn, _, raw in _messages(reader, info_topic, path):
        return camera_model(reader.deserialize(raw, conn.msgtype), source=f"{path}:{info_topic}")
    raise BagError(f"CameraInfo topic {info_topic} in bag {path} has no messages")


def rectify_maps(cam: CameraModel):
    """cv2 remap tables that rectify raw images like image_proc (K, D, R -> P), for ``cam``'s size."""
    if cam.width <= 0 or cam.height <= 0:
        raise BagError(f"CameraInfo has no image size ({cam.width}x{cam.height}); cannot build undistortion maps")
    newK = cam.P[:3, :3] if cam.has_P else cam.K
    R = cam.R if cam.R.any() else np.eye(3)
    size = (cam.width, cam.height)
    if cam.distortion_model == "equidistant":
        return cv2.fisheye.initUndistortRectifyMap(cam.K, cam.D[:4], R, newK, size, cv2.CV_32FC1)
    if cam.distortion_model not in ("plumb_bob", "rational_polynomial", ""):
        raise BagError(f"distortion model {cam.distortion_model!r} is not supported for undistortion")
    return cv2.initUndistortRectifyMap(cam.K, cam.D, R, newK, size, cv2.CV_32FC1)


def _process(msg, msgtype, source, maps, width, height):
    image = decode_image_msg(msg, msgtype, source)
    if maps is not None:
        if image.shape[:2] != maps[0].shape[:2]:
            raise ImageDecodeError(f"{source}: image {image.shape[1]}x{image.shape[0]} does not match "
                                   f"CameraInfo {maps[0].shape[1]}x{maps[0].shape[0]}")
        image = cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    thumb = resize_rgb(image, THUMB_WIDTH, max(1, round(THUMB_WIDTH * height / width)))
    return resize_rgb(image, width, height), thumb, (w, h)


def decode_topic(reader, path: Path, topic: str, out_file: Path, width: int, height: int,
                 maps=None, workers: int | None = None) -> dict:
    """Decode every message of ``topic`` into ``out_file`` (N x height x width x 3 uint8 .npy, bag order).

    Returns {"stamps": [ns, ...] (header stamp, log time if the header stamp is 0), "thumbs": N x h x 160 x 3
    uint8 (h from the training aspect), "raw_size": [w, h] of the first image, "bad_rows": rows whose message
    could not be decoded (skipped later; all bad raises BagError)}. The file is written to a temporary name and renamed.
    """
    count = sum(int(c.msgcount) for c in reader.connections if c.topic == topic)
    tmp = out_file.with_name(out_file.name + f".tmp{os.getpid()}")
    frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(count, 1), height, width, 3))
    stamps, thumbs, raw_size = [], [], None
    pending: collections.deque = collections.deque()
    workers = workers or min(8, os.cpu_count() or 1)

    thumb_shape = (max(1, round(THUMB_WIDTH * height / width)), THUMB_WIDTH, 3)
    bad_rows, errors = [], []

    def drain(limit: int) -> None:
        nonlocal raw_size
        while len(pending) > limit:
            row, fut = pending.popleft()
            try:
                frame, thumb, size = fut.result()
            except ImageDecodeError as exc:  # one bad message is a gap, not a reason to stop
                bad_rows.append(row)
                errors.append(str(exc))
                thumbs.append(np.zeros(thumb_shape, np.uint8))
                continue
            if raw_size is None:
                raw_size = list(size)
            frames[row] = frame
            thumbs.append(thumb)

    try:
        with cf.ThreadPoolExecutor(workers) as pool:
            for row, (conn, t, raw) in enumerate(_messages(reader, topic, path)):
                if row >= count:
                    raise BagError(f"bag {path}: more messages on {topic} than its index says ({count})")
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = stamp_ns(msg.header)
                stamps.append(stamp if stamp > 0 else int(t))
                source = f"{path}:{topic}@{stamps[-1] / 1e9:.6f}"
                pending.append((row, pool.submit(_process, msg, conn.msgtype, source, maps, width, height)))
                drain(2 * workers)
            drain(0)
        if not stamps:
            raise BagError(f"topic {topic} in bag {path} has no messages")
        if len(bad_rows) == len(stamps):
            raise BagError(f"no image on {topic} in bag {path} could be decoded; first error: {errors[0]}")
        if len(stamps) != count:
            raise BagError(f"bag {path}: its index lists {count} messages on {topic} but only {len(stamps)} "
                           "could be read (truncated file?)")
        frames.flush()
        del frames
        os.replace(tmp, out_file)
    finally:
        if tmp.exists():
            tmp.unlink()
    if errors:
        log.warning("%d of %d images on %s in %s could not be decoded and are skipped; first: %s",
                    len(errors), len(stamps), topic, path, errors[0])
    return {"stamps": stamps, "thumbs": np.stack(thumbs), "raw_size": raw_size, "bad_rows": bad_rows,
            "first_error": errors[0] if errors else None}
