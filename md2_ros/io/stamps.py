"""Message stamps: the one ``builtin_interfaces/Time`` -> integer nanoseconds rule."""
from __future__ import annotations

__all__ = ["stamp_ns", "ns_to_stamp"]


def stamp_ns(stamp) -> int:
    """A ``Time`` (``sec``, ``nanosec``) or a message / ``Header`` holding one -> integer nanoseconds."""
    stamp = getattr(stamp, "header", stamp)
    stamp = getattr(stamp, "stamp", stamp)
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9."""
    return divmod(int(ns), 1_000_000_000)
