"""Frame sources for offline inference (the CLI): an image file, a folder of images, a video file, or a ROS bag topic.

ROS-free: bags are read with ``rosbags`` (pure Python), images and videos with OpenCV. Every source
yields :class:`Frame` objects with H×W×3 uint8 **RGB** pixels. Problems with the input raise
:class:`InputError` (a ``ValueError``) whose text names the file or topic and the cause.
"""
from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .bags import (BAG_EXTS, INFO_TYPE, BagReadError, TopicChoiceError, choose_image_topic, choose_info_topic,
                   list_topics, open_reader, typestore)
from .errors import FormatError
from .images import decode_image_msg, read_image_file
from .intrinsics import InvalidIntrinsics, camera_info_K
from .stamps import stamp_ns

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
VIDEO_EXTS = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
NOMINAL_RATE_HZ = 10.0  # stamps for image files (frame index / 10 s), like KITTI


class InputError(FormatError):
    """The input cannot be read; the text names the file or topic and why."""


@dataclass
class Frame:
    """One input image. ``K``: 3×3 pixel intrinsics for this image's size, or None.

    ``passthrough``: original bag messages to copy into an output bag, as (topic, msgtype, log time ns,
    CDR bytes): the camera_info messages seen since the previous frame and this image's message.
    """

    index: int
    name: str
    rgb: np.ndarray
    stamp_ns: int
    frame_id: str = "camera_optical_frame"
    K: np.ndarray | None = None
    passthrough: list = field(default_factory=list)
    log_ns: int | None = None  # bag log (receive) time of the image message; None for files


def detect_kind(path) -> str:
    """'image', 'folder', 'video' or 'bag' for ``path``; InputError when missing or unknown."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        return "bag" if (path / "metadata.yaml").is_file() else "folder"
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in BAG_EXTS:
        return "bag"
    raise InputError(f"{path}: unknown input type {ext or '(no extension)'!r}; expected an image "
                     f"({', '.join(sorted(IMAGE_EXTS))}), a video ({', '.join(sorted(VIDEO_EXTS))}), a bag "
                     f"({', '.join(sorted(BAG_EXTS))} or a rosbag2 folder) or a folder of images")


def read_image_rgb(path) -> np.ndarray:
    """H×W×3 uint8 RGB from an image file; InputError if it cannot be decoded."""
    try:
        return read_image_file(path)
    except (OSError, ValueError) as exc:
        raise InputError(str(exc)) from None


class ImageFilesSource:
    """A single image file or every image file (sorted by name, not recursive) of a folder."""

    def __init__(self, path, every: int = 1):
        path = Path(path)
        self.kind = "folder" if path.is_dir() else "image"
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS) \
            if path.is_dir() else [path]
        if not files:
            raise InputError(f"{path}: folder contains no images ({', '.join(sorted(IMAGE_EXTS))})")
        self.files = files[::every]
        self.every = every
        stems = [p.stem for p in self.files]
        self.names = stems if len(set(stems)) == len(stems) else [p.name.replace(".", "_") for p in self.files]
        self.total = len(self.files)
        self.bad = 0

    def __iter__(self):
        for i, (p, name) in enumerate(zip(self.files, self.names)):
            idx = i * self.every
            try:
                rgb = read_image_rgb(p)
            except InputError as exc:
                if self.kind == "image":
                    raise
                self.bad += 1  # one bad file of a folder is skipped and counted, as a bad bag message is
                log.warning("%s skipped: %s", p.name, exc)
                continue
            yield Frame(idx, name, rgb, int(round(idx * 1e9 / NOMINAL_RATE_HZ)))


class VideoSource:
    """Frames of a video file decoded by OpenCV; stamps are frame index / fps."""

    def __init__(self, path, every: int = 1):
        self.path, self.every, self.kind = Path(path), every, "video"
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"{self.path}: OpenCV cannot open this video")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        self.fps = fps if fps and fps > 0 else NOMINAL_RATE_HZ
        self.frame_count = n if n > 0 else None  # what the container says
        self.total = (n + every - 1) // every if n > 0 else None

    def __iter__(self):
        cap = cv2.VideoCapture(str(self.path))
        idx, got = 0, 0
        try:
            while True:
                if idx % self.every:
                    if not cap.grab():
                        break
                else:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    got += 1
                    yield Frame(idx, f"frame_{idx:06d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                int(round(idx * 1e9 / self.fps)))
                idx += 1
        finally:
            cap.release()
        if got == 0:
            raise InputError(f"{self.path}: no frames could be decoded from this video")
        if self.frame_count and idx < self.frame_count:
            log.warning("%s: decoding stopped at frame %d of the %d the file announces (truncated or corrupt "
                        "video?); the frames after it are missing", self.path, idx, self.frame_count)


# ----------------------------------------------------------------------------------------- bags

class BagSource:
    """An Image or CompressedImage topic of a rosbag2 (.mcap / .db3 / folder) or ROS 1 bag, with CameraInfo."""

    def __init__(self, path, topic: str | None = None, info_topic: str | None = None, every: int = 1):
        self.path, self.every, self.kind = Path(path), every, "bag"
        self.typestore = typestore()
        try:
            with closing(open_reader(self.path)) as reader:
                topics = list_topics(reader)
        except BagReadError as exc:
            raise InputError(str(exc)) from exc
        try:
            topic = choose_image_topic(topics, self.path, topic, hint="pick one with --topic")
            info_topic = choose_info_topic(topics, self.path, topic, info_topic, required=False)
        except TopicChoiceError as exc:
            raise InputError(str(exc)) from exc
        self.topic, self.info_topic, self.msgtype = topic, info_topic, topics[topic][0]
        self.total = (topics[topic][1] + every - 1) // every
        self.bad = 0
        self.trailing: list = []
        self.invalid_info = None  # the reason the bag's CameraInfo cannot be used, if so

    def _intrinsics(self, info, width: int, height: int) -> np.ndarray | None:
        """K of the latest CameraInfo for this image; None (said once) when there is none or it is invalid."""
        if info is None:
            return None
        try:
            return camera_info_K(info, width, height, f"{self.path}: {self.info_topic}")
        except InvalidIntrinsics as exc:
            if not self.invalid_info:
                log.warning("%s (invalid, not missing): no point clouds from it", exc)
            self.invalid_info = str(exc)
            return None

    def __iter__(self):
        with closing(open_reader(self.path)) as reader:
            img_conns = [c for c in reader.connections if c.topic == self.topic]
            info_conns = [c for c in reader.connections if c.topic == self.info_topic]
            info = None
            for conn, _, raw in reader.messages(connections=info_conns):  # intrinsics for early images
                info = reader.deserialize(raw, conn.msgtype)
                break
            pending, idx = [], -1
            for conn, t, raw in reader.messages(connections=img_conns + info_conns):
                cdr = raw if reader.is2 else None
                if conn.topic == self.info_topic:
                    info = reader.deserialize(raw, conn.msgtype)
                    pending.append((conn.topic, conn.msgtype, t, cdr or self.typestore.serialize_cdr(info, INFO_TYPE)))
                    continue
                idx += 1
                if idx % self.every:
                    continue
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                    rgb = decode_image_msg(msg, conn.msgtype)
                except Exception as exc:  # a bad message is dropped, not fatal
                    self.bad += 1
                    log.warning("%s: %s message %d dropped: %s", self.path, self.topic, idx, exc)
                    continue
                stamp = stamp_ns(msg.header)
                K = self._intrinsics(info, rgb.shape[1], rgb.shape[0])
                pending.append((conn.topic, conn.msgtype, t, cdr or self.typestore.serialize_cdr(msg, conn.msgtype)))
                yield Frame(idx, f"frame_{idx:06d}", rgb, stamp, msg.header.frame_id or "camera_optical_frame", K,
                            pending, t)
                pending = []
            self.trailing = pending  # CameraInfo messages after the last image, for an output bag


def open_source(path, topic: str | None = None, info_topic: str | None = None, every: int = 1):
    """The frame source for ``path`` (see :func:`detect_kind`), taking every ``every``-th frame."""
    if int(every) < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    kind = detect_kind(path)
    if kind == "bag":
        return BagSource(path, topic, info_topic, every)
    if topic is not None:
        log.warning("--topic is ignored for a %s input", kind)
    if kind == "video":
        return VideoSource(path, every)
    return ImageFilesSource(path, every)
