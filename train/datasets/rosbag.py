"""Train straight from ROS 2 bags (``.mcap``, ``.db3`` or a rosbag2 folder), read with `rosbags` (no ROS).

* Images: a ``sensor_msgs/msg/Image`` (any common encoding) or ``CompressedImage`` topic, plus its
  ``CameraInfo`` (default: ``<image namespace>/camera_info``, or the bag's only CameraInfo topic).
* Distortion: the photometric loss needs pinhole images. By default the CameraInfo must have ~zero
  distortion (``|d| <= 1e-5``, any model) and K is used. Otherwise either say ``rectified=True``
  (the topic is already rectified, e.g. ``image_rect``: P[:3,:3] is used, D ignored) or
  ``undistort=True`` (each image is rectified with K, D, R -> P like image_proc, then P is used).
  Anything else raises `BagError` explaining this.
* Triplets: messages sorted by header stamp; frame id ``k`` is the message ``k * stride`` places away,
  and every gap between consecutive messages on the way must be <= ``max_gap`` seconds (default 2.5x
  the median period, which tolerates one dropped frame). Others are skipped and counted.
* Static frames: a target is dropped when, for *any* of its temporal sources, the mean absolute
  difference of 160-pixel-wide thumbnails (RGB in [0, 1]) is below ``static_threshold`` (default
  0.005; 0 disables). A still camera in a busy street scores about 0.003, a car at walking pace
  about 0.01. Counts are in ``.stats``.
* Motion-spaced sources (``target_motion`` > 0): a robot that slows down gives its slow frames little
  parallax at a fixed stride. Each source of frame id ``k`` is then moved out from ``|k| * stride`` one
  message at a time until its thumbnail difference from the target reaches ``|k| * target_motion`` (the
  measure of ``static_threshold``), at most ``|k| * max_stride`` messages away and never across a gap;
  where no such message exists the farthest allowed one is used. Fast stretches keep ``stride``.
* Stereo ("s" in frame_ids): a second topic pair; each left message is matched to the right message
  nearest in stamp (within ``stereo_max_dt``, default a quarter of the median period); the baseline is
  ``-P[0,3] / P[0,0]`` of the right CameraInfo (ROS: ``P[3] = -fx * B``) unless ``baseline`` is given.
  Left intrinsics then come from the left P. Stereo needs rectified pairs (zero distortion and
  identity R, ``rectified=True`` or ``undistort=True``).
* Cache: the images are decoded once into ``<bag>.md2frames-<key>.npy`` (see `bagcache`) and the
  index into ``<bag>.md2index.json`` beside the bag (or in ``cache_dir``; if the bag's folder is not
  writable, ``~/.cache/md2_ros``). The cache is rebuilt when the bag's size or mtime or the decode
  parameters change, or when a cache file no longer matches the size and CRC-32 recorded when it was
  written (truncated, zeroed...); the index is recomputed (cheaply) when only frame_ids/stride/gap/threshold
  change. A file lock makes concurrent builders (DDP ranks) wait for one another.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from md2_ros.io.intrinsics import normalise_intrinsics

from .base import RawSample, SequenceDataset
from .bagcache import (BagError, bag_fingerprint, cache_damage, decode_topic, file_digest, open_bag, read_camera,
                       rectify_maps, remove_stale_cache_temps, resolve_topics)

__all__ = ["RosbagDataset", "BagError", "CACHE_VERSION"]

CACHE_VERSION = 2  # 2: size + CRC-32 of every cache file in the index
log = logging.getLogger(__name__)


def _key(params: dict) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _writable_dir(preferred: Path) -> Path:
    if os.access(preferred, os.W_OK):
        return preferred
    fallback = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "md2_ros"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _spaced_source(i: int, j: int, motion, target: float, max_step: int, n: int, bad: np.ndarray) -> int:
    """The first message from ``j`` outwards (away from target ``i``, at most ``max_step`` from it) whose
    ``motion(.)`` reaches ``target``; else the farthest such message in range and without a gap."""
    step = 1 if j > i else -1
    best = j
    for k in range(abs(j - i), max_step + 1):
        c = i + step * k
        if c < 0 or c >= n or bad[max(i, c)] != bad[min(i, c)]:
            break
        best = c
        if motion(c) >= target:
            break
    return best


class RosbagDataset(SequenceDataset):
    """Frames from a ROS 2 bag; see the module docstring for every rule.

    Args:
        bag: ``.mcap`` / ``.db3`` file or rosbag2 folder.
        image_topic, camera_info_topic: default auto-detected (the only image topic; its camera_info).
        frame_ids, height, width, num_scales, is_train: see `SequenceDataset`.
        stride: message step per frame id. max_gap: seconds (None: 2.5 x median period).
        target_motion, max_stride: > 0: space each source by the image motion it shows (module docstring).
        static_threshold: mean abs thumbnail difference below which a target is static (0: keep all).
        right_image_topic, right_camera_info_topic: stereo pair (needed when "s" in frame_ids).
        stereo_max_dt: seconds allowed between matched left/right stamps (None: 0.25 x median period).
        rectified, undistort: distortion handling (see module docstring). baseline: metres, overrides P.
        cache_dir: where the cache goes (default beside the bag). rebuild: ignore an existing cache.
        decode_workers: threads used to decode the bag once.
    Attributes: ``stats`` (counts), ``skipped``, ``cache_status`` ("built" | "reindexed" | "reused"),
        ``K`` (normalised 4x4), ``baseline``, ``stamps`` (ns of each sample's target), ``image_topic``.
    """

    def __init__(self, bag, image_topic: str | None = None, camera_info_topic: str | None = None,
                 frame_ids=(0, -1, 1), height=192, width=640, num_scales=4, is_train=True, *,
                 stride: int = 1, max_gap: float | None = None, static_threshold: float = 0.005,
                 target_motion: float = 0.0, max_stride: int = 8,
                 right_image_topic: str | None = None, right_camera_info_topic: str | None = None,
                 stereo_max_dt: float | None = None, rectified: bool = False, undistort: bool = False,
                 baseline: float | None = None, cache_dir=None, rebuild: bool = False,
                 decode_workers: int | None = None):
        super().__init__(frame_ids, height, width, num_scales, is_train)
        self.bag = Path(bag).resolve()
        if not self.bag.exists():
            raise FileNotFoundError(f"bag not found: {self.bag}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if "s" in self.frame_ids and right_image_topic is None:
            raise ValueError("frame id 's' needs right_image_topic (the stereo partner's image topic)")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _writable_dir(self.bag.parent)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        name = self.bag.name
        self.index_file = self.cache_dir / f"{name}.md2index.json"
        decode = {"version": CACHE_VERSION, "image_topic": image_topic, "camera_info_topic": camera_info_topic,
                  "right_image_topic": right_image_topic if "s" in self.frame_ids else None,
                  "right_camera_info_topic": right_camera_info_topic if "s" in self.frame_ids else None,
                  "height": self.height, "width": self.width, "rectified": rectified, "undistort": undistort}
        if target_motion < 0 or max_stride < stride:
            raise ValueError(f"need target_motion >= 0 and max_stride >= stride, got {target_motion}, {max_stride}")
        index = {"frame_ids": [str(f) for f in self.frame_ids], "stride": stride, "max_gap": max_gap,
                 "static_threshold": static_threshold, "stereo_max_dt": stereo_max_dt, "baseline": baseline}
        if target_motion > 0:   # only then part of the key: existing indexes stay valid
            index.update(target_motion=float(target_motion), max_stride=int(max_stride))
        self._decode_params, self._index_params = decode, index
        self._decode_workers = decode_workers
        with open(self.cache_dir / f"{name}.md2index.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._load_or_build(rebuild)
        self._frames = {}
        self._apply_index()

    # -- cache -----------------------------------------------------------------------------------
    def _load_or_build(self, rebuild: bool) -> None:
        fingerprint = bag_fingerprint(self.bag)
        decode_key, index_key = _key(self._decode_params), _key(self._index_params)
        doc = None
        if self.index_file.exists() and not rebuild:
            try:
                doc = json.loads(self.index_file.read_text())
            except (OSError, ValueError):
                doc = None
        fresh = doc is not None and doc.get("fingerprint") == fingerprint and doc.get("decode_key") == decode_key
        if fresh and (damage := self._cache_damage(doc)):
            log.warning("frame cache of %s is damaged (%s): rebuilding it", self.bag, damage)
            fresh = False
        if not fresh:
            remove_stale_cache_temps(self.cache_dir, self.bag.name)
            if doc is not None:  # remove the stale frame files of a previous build
                for s in doc.get("streams", {}).values():
                    for f in (s.get("file"), s.get("thumbs")):
                        if f and (self.cache_dir / f).exists():
                            (self.cache_dir / f).unlink()
            doc = self._decode(fingerprint, decode_key)
            self.cache_status = "built"
        elif doc.get("index_key") != index_key:
            self.cache_status = "reindexed"
        else:
            self.cache_status = "reused"
        if self.cache_status != "reused":
            doc.update(self._make_index(doc), index_key=index_key, index_params=self._index_params)
            tmp = self.index_file.with_name(self.index_file.name + f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.index_file)
        self._doc = doc

    def _cache_damage(self, doc) -> str | None:
        """The first cache file that does not match its recorded size/CRC, and why; None if all intact."""
        for st in doc.get("streams", {}).values():
            for k in ("file", "thumbs"):
                damage = cache_damage(self.cache_dir / st[k], st.get(f"{k}_digest"))
                if damage:
                    return f"{st[k]}: {damage}"
        return None

    def _camera_K(self, cam, use_P: bool, side: str) -> np.ndarray:
        """3x3 pixel intrinsics of the images as they will be used (see the distortion rules)."""
        if not use_P and cam.has_distortion:
            raise BagError(f"bag {self.bag}: {side} CameraInfo has distortion {cam.distortion_model} "
                           f"{np.round(cam.D, 5).tolist()}; the images must be pinhole. Set data.rectified=true if "
                           "the topic is already rectified (image_rect), or data.undistort=true to rectify here")
        return cam.P[:3, :3] if use_P and cam.has_P else cam.K

    def _decode(self, fingerprint, decode_key) -> dict:
        p = self._decode_params
        stereo = p["right_image_topic"] is not None
        reader = open_bag(self.bag)
        try:
            topics = [resolve_topics(reader, self.bag, p["image_topic"], p["camera_info_topic"])]
            if stereo:
                topics.append(resolve_topics(reader, self.bag, p["right_image_topic"], p["right_camera_info_topic"]))
            streams, doc = {}, {"version": CACHE_VERSION, "bag": str(self.bag), "fingerprint": fingerprint,
                                "decode_key": decode_key, "decode_params": p}
            for side, (image_topic, info_topic) in zip(("left", "right"), topics):
                cam = read_camera(reader, self.bag, info_topic)
                if stereo and not (p["rectified"] or p["undistort"] or cam.is_rectified):
                    raise BagError(f"bag {self.bag}: stereo needs rectified images; {info_topic} has "
                                   "distortion or a rectification rotation (set data.rectified=true or data.undistort=true)")
                use_P = p["rectified"] or p["undistort"] or stereo
                K = self._camera_K(cam, use_P, side)
                maps = rectify_maps(cam) if p["undistort"] and not cam.is_rectified else None
                base = f"{self.bag.name}.md2frames-{decode_key}-{side}"
                log.info("decoding %s from %s into the training cache (once)", image_topic, self.bag)
                out = decode_topic(reader, self.bag, image_topic, self.cache_dir / f"{base}.npy", self.width,
                                   self.height, maps=maps, workers=self._decode_workers)
                np.save(self.cache_dir / f"{base}.thumbs.npy", out["thumbs"])
                size = (cam.width, cam.height) if cam.width > 0 and cam.height > 0 else tuple(out["raw_size"])
                if list(size) != list(out["raw_size"]):
                    log.warning("%s: images are %s but %s says %dx%d; assuming the images are resized full frames",
                                self.bag, out["raw_size"], info_topic, cam.width, cam.height)
                K = normalise_intrinsics(K, *size)
                streams[side] = {"file": f"{base}.npy", "thumbs": f"{base}.thumbs.npy", "image_topic": image_topic,
                                 "camera_info_topic": info_topic, "stamps": out["stamps"], "K": K.tolist(),
                                 "camera": cam.to_json(), "raw_size": out["raw_size"],
                                 "bad_rows": out["bad_rows"], "first_error": out["first_error"],
                                 "file_digest": file_digest(self.cache_dir / f"{base}.npy"),
                                 "thumbs_digest": file_digest(self.cache_dir / f"{base}.thumbs.npy")}
            doc["streams"] = streams
            if stereo:
                P = np.asarray(streams["right"]["camera"]["P"])
                doc["baseline_from_P"] = float(-P[0, 3] / P[0, 0]) if P[0, 0] > 0 else None
            return doc
        finally:
            reader.close()

    def _make_index(self, doc) -> dict:
        """Targets (as rows of the left frame cache) and the rows of their sources; counts."""
        q = self._index_params
        left = doc["streams"]["left"]
        stamps = np.asarray(left["stamps"], dtype=np.int64)
        order = np.argsort(stamps, kind="stable")
        t = stamps[order]
        keep = np.concatenate([[True], np.diff(t) > 0])  # drop duplicate stamps (keep the first)
        skipped = {"duplicate stamp": int((~keep).sum())} if (~keep).any() else {}
        order, t = order[keep], t[keep]
        undecodable = set(left.get("bad_rows", []))
        if undecodable:  # left out, so they break sequences like a dropped message
            good = np.array([int(r) not in undecodable for r in order], dtype=bool)
            skipped["undecodable message"] = int((~good).sum())
            order, t = order[good], t[good]
        n = len(t)
        dt = np.diff(t)
        period = float(np.median(dt)) if n > 1 else 1e8
        max_gap = q["max_gap"] * 1e9 if q["max_gap"] is not None else 2.5 * period
        bad = np.concatenate([[0], np.cumsum(dt > max_gap)])
        temporal = [f for f in self.int_frame_ids if f != 0]
        offsets = [f * q["stride"] for f in temporal]
        right_rows = None
        if "s" in self.frame_ids:
            right = doc["streams"]["right"]
            rt = np.asarray(right["stamps"], dtype=np.int64)
            rorder = np.argsort(rt, kind="stable")
            rbad = set(right.get("bad_rows", []))
            rorder = np.array([r for r in rorder if int(r) not in rbad], dtype=np.int64)
            rts = rt[rorder]
            tol = q["stereo_max_dt"] * 1e9 if q["stereo_max_dt"] is not None else 0.25 * period
            pos = np.clip(np.searchsorted(rts, t), 1, max(len(rts) - 1, 1))
            cand = np.stack([pos - 1, np.minimum(pos, len(rts) - 1)])
            best = cand[np.argmin(np.abs(rts[cand] - t), axis=0), np.arange(n)]
            right_rows = np.where(np.abs(rts[best] - t) <= tol, rorder[best], -1)
        thumbs = np.load(self.cache_dir / left["thumbs"], mmap_mode="r")
        targets, rows, scores = [], [], []

        def skip(reason):
            skipped[reason] = skipped.get(reason, 0) + 1

        for i in range(n):
            js = [i + o for o in offsets]
            if any(j < 0 or j >= n for j in js):
                skip("no neighbour (sequence end)")
                continue
            if any(bad[max(i, j)] - bad[min(i, j)] > 0 for j in js):
                skip("gap over max_gap")
                continue
            if right_rows is not None and right_rows[i] < 0:
                skip("no stereo match")
                continue
            ti = thumbs[order[i]].astype(np.float32) if js else None

            def motion(j):
                return float(np.abs(ti - thumbs[order[j]]).mean()) / 255.0

            if js and q.get("target_motion"):
                # frame id ±k: its source goes k times as far
                js = [_spaced_source(i, j, motion, q["target_motion"] * abs(f), q["max_stride"] * abs(f), n, bad)
                      for j, f in zip(js, temporal)]
            if js and q["static_threshold"] > 0:
                score = min(motion(j) for j in js)
                if score < q["static_threshold"]:
                    skip("static")
                    continue
                scores.append(score)
            row = {0: int(order[i]), **{f: int(order[j]) for f, j in zip(temporal, js)}}
            if right_rows is not None:
                row["s"] = int(right_rows[i])
            targets.append(int(t[i]))
            rows.append([row[f] for f in self.frame_ids])
        return {"rows": rows, "target_stamps": targets, "skipped": skipped, "messages": int(len(stamps)),
                "period_s": period / 1e9, "min_motion": float(min(scores)) if scores else None}

    # -- dataset ---------------------------------------------------------------------------------
    def _apply_index(self) -> None:
        doc = self._doc
        self._rows = doc["rows"]
        self.stamps = doc["target_stamps"]
        self.skipped = dict(doc["skipped"])
        left = doc["streams"]["left"]
        self.image_topic, self.camera_info_topic = left["image_topic"], left["camera_info_topic"]
        self.K = np.asarray(left["K"], dtype=np.float64)
        self.baseline = None
        if "s" in self.frame_ids:
            self.baseline = self._index_params["baseline"] or doc.get("baseline_from_P")
            if self.baseline is None or self.baseline <= 0:
                raise BagError(f"bag {self.bag}: right CameraInfo P[3] gives baseline {self.baseline}; "
                               "expected P[3] = -fx * B < 0 for the right camera (or pass baseline=)")
        self.stats = {"messages": doc["messages"], "samples": len(self._rows), "skipped": dict(self.skipped),
                      "period_s": doc["period_s"], "cache": self.cache_status}
        if not self._rows:
            raise BagError(f"bag {self.bag}: no usable samples on {self.image_topic} ({self.stats})")

    def __len__(self) -> int:
        return len(self._rows)

    def frame_stamps(self) -> dict:
        """{frame id: (len,) int64 header stamps (ns)} of every sample's frames (temporal ids only)."""
        stamps = np.asarray(self._doc["streams"]["left"]["stamps"], dtype=np.int64)
        rows = np.asarray(self._rows, dtype=np.int64).reshape(len(self._rows), len(self.frame_ids))
        return {f: stamps[rows[:, i]] for i, f in enumerate(self.frame_ids) if f != "s"}

    def __getstate__(self):  # memmaps are reopened in each DataLoader worker, never pickled
        state = self.__dict__.copy()
        state["_frames"] = {}
        return state

    def _stream(self, side: str) -> np.ndarray:
        if side not in self._frames:
            self._frames[side] = np.load(self.cache_dir / self._doc["streams"][side]["file"], mmap_mode="r")
        return self._frames[side]

    def sample_frames(self, index: int) -> tuple:
        rows = frozenset(("r" if f == "s" else "l", row) for f, row in zip(self.frame_ids, self._rows[index]))
        return str(self.bag), self.stamps[index], rows

    def load(self, index: int) -> RawSample:
        images = {}
        for f, row in zip(self.frame_ids, self._rows[index]):
            images[f] = np.array(self._stream("right" if f == "s" else "left")[row])
        return RawSample(images, self.K, "l", self.baseline)
