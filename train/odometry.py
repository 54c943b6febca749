"""Distance travelled between two image stamps, from odometry: the target of velocity supervision.

Sources (ROS-free):

* a bag topic of ``nav_msgs/msg/Odometry`` or ``geometry_msgs/msg/TwistStamped`` (read with rosbags);
* a poses file (KITTI odometry format: one 3×4 camera->world pose per line, one line per frame) with
  the frames' stamps.

Every source becomes an :class:`OdometryTrack`: the cumulative path length ``s(t)`` at the odometry
stamps. The speed ``‖v‖`` is integrated over time (trapezoid rule) for twists; for Odometry messages
whose pose moves, the path length comes from the positions themselves (more exact than a twist
integrated at a low rate); for a poses file, from consecutive positions. ``distance(a, b)`` is
``|s(b) − s(a)|`` with ``s`` interpolated linearly at the image stamps — ``‖v‖·Δt`` for a constant
speed — and None (no supervision for that pair) when the odometry does not cover [a, b] or has a gap
longer than ``max_gap`` seconds around it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ODOM_TYPE = "nav_msgs/msg/Odometry"
TWIST_TYPE = "geometry_msgs/msg/TwistStamped"


@dataclass
class OdometryTrack:
    """stamps: (N,) int64 ns, increasing; path: (N,) float64 cumulative metres travelled."""

    stamps: np.ndarray
    path: np.ndarray
    source: str = ""

    def __post_init__(self):
        self.stamps = np.asarray(self.stamps, dtype=np.int64)
        self.path = np.asarray(self.path, dtype=np.float64)
        if self.stamps.shape != self.path.shape or self.stamps.ndim != 1 or len(self.stamps) < 2:
            raise ValueError(f"odometry {self.source}: need >= 2 samples with one path length each, got "
                             f"{self.stamps.shape} stamps and {self.path.shape} lengths")
        if np.any(np.diff(self.stamps) <= 0):
            raise ValueError(f"odometry {self.source}: stamps must increase strictly")

    @classmethod
    def from_speeds(cls, stamps_ns, speeds, source: str = "") -> "OdometryTrack":
        """From speed magnitudes ‖v‖ (m/s) at the stamps, integrated with the trapezoid rule."""
        t = np.asarray(stamps_ns, dtype=np.int64)
        v = np.abs(np.asarray(speeds, dtype=np.float64))
        dt = np.diff(t) / 1e9
        return cls(t, np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)]), source)

    @classmethod
    def from_positions(cls, stamps_ns, positions, source: str = "") -> "OdometryTrack":
        """From positions (N×3, metres): path length along the polyline."""
        p = np.asarray(positions, dtype=np.float64).reshape(len(stamps_ns), 3)
        steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
        return cls(np.asarray(stamps_ns, dtype=np.int64), np.concatenate([[0.0], np.cumsum(steps)]), source)

    def distance(self, a_ns: int, b_ns: int, max_gap: float = 0.5) -> float | None:
        """Metres travelled between stamps a and b (either order); None when not covered (see module doc)."""
        lo, hi = (a_ns, b_ns) if a_ns <= b_ns else (b_ns, a_ns)
        t = self.stamps
        if lo < t[0] or hi > t[-1]:
            return None
        i, j = int(np.searchsorted(t, lo, "right")) - 1, int(np.searchsorted(t, hi, "left"))
        if np.any(np.diff(t[i:j + 1]) > max_gap * 1e9):
            return None
        s = np.interp([lo, hi], t.astype(np.float64), self.path)
        return float(s[1] - s[0])


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def odometry_topics(reader) -> list[tuple[str, str]]:
    """[(topic, type)] of the Odometry / TwistStamped topics in an open rosbags reader."""
    return sorted({(c.topic, c.msgtype) for c in reader.connections if c.msgtype in (ODOM_TYPE, TWIST_TYPE)})


def read_bag_track(bag, topic: str | None = None) -> OdometryTrack:
    """The odometry of a bag (``topic``, or its only Odometry/TwistStamped topic) as a track; ValueError if none."""
    from train.datasets.bagcache import open_bag

    bag = Path(bag)
    reader = open_bag(bag)
    try:
        found = odometry_topics(reader)
        if topic is None:
            if len(found) != 1:
                raise ValueError(f"bag {bag}: {'no' if not found else 'several'} odometry topics "
                                 f"({ODOM_TYPE} or {TWIST_TYPE}): {found}; pass data.odometry_topic")
            topic = found[0][0]
        match = [typ for t, typ in found if t == topic]
        if not match:
            raise ValueError(f"bag {bag}: no {ODOM_TYPE} / {TWIST_TYPE} topic {topic!r} (found {found})")
        stamps, speeds, positions = [], [], []
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            twist = msg.twist.twist if match[0] == ODOM_TYPE else msg.twist
            stamps.append(_stamp_ns(msg.header))
            speeds.append(np.linalg.norm([twist.linear.x, twist.linear.y, twist.linear.z]))
            if match[0] == ODOM_TYPE:
                p = msg.pose.pose.position
                positions.append([p.x, p.y, p.z])
    finally:
        reader.close()
    order = np.argsort(stamps, kind="stable")
    t = np.asarray(stamps, dtype=np.int64)[order]
    keep = np.concatenate([[True], np.diff(t) > 0])
    source = f"{bag}:{topic}"
    if positions and np.ptp(np.asarray(positions)[order][keep], axis=0).max() > 0:
        return OdometryTrack.from_positions(t[keep], np.asarray(positions)[order][keep], source)
    return OdometryTrack.from_speeds(t[keep], np.asarray(speeds)[order][keep], source)


def pair_distances(track: OdometryTrack, target_ns, source_ns: dict, max_gap: float = 0.5):
    """Distances (metres, NaN where unknown) for each target stamp and each source frame id.

    target_ns: (N,) stamps; source_ns: {frame id: (N,) stamps}. Returns ({frame id: (N,) float32}, skipped).
    """
    out, skipped = {}, 0
    for f, src in source_ns.items():
        d = [track.distance(int(a), int(b), max_gap) for a, b in zip(target_ns, src)]
        skipped += sum(x is None for x in d)
        out[f] = np.array([np.nan if x is None else x for x in d], dtype=np.float32)
    return out, skipped
