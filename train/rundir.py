"""The ``log_dir`` of one training: created and checked writable before any work, held by one
training at a time (an exclusive ``flock`` on ``<log_dir>/.train.lock``, released by the kernel
when the process ends, even by ``kill -9``), and swept of the temp files a killed save left.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from md2_ros.core.checkpoint import remove_stale_temps

__all__ = ["RunDirError", "claim_log_dir", "LOCK_NAME"]

LOCK_NAME = ".train.lock"
SWEPT = ("", "checkpoints", "models")  # the folders a training writes with atomic saves


class RunDirError(ValueError):
    """The log_dir cannot be used: not creatable, not writable, or in use by another training."""


def _open_lock(log_dir: Path):
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        return open(log_dir / LOCK_NAME, "a+")
    except OSError as exc:
        raise RunDirError(f"log_dir {log_dir} is not writable ({exc.strerror or exc}); "
                          "choose another log_dir") from None


def claim_log_dir(log_dir) -> object:
    """Create ``log_dir``, take its lock and remove stale temp files; returns the open lock file
    (keep it open for the whole training). RunDirError with a clear message otherwise."""
    log_dir = Path(log_dir)
    handle = _open_lock(log_dir)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(f"log_dir {log_dir} is in use by another training ({owner}); wait for it to "
                          "finish or choose another log_dir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
    except OSError as exc:
        handle.close()
        raise RunDirError(f"log_dir {log_dir} is not writable ({exc.strerror or exc})") from None
    for sub in SWEPT:
        if (log_dir / sub).is_dir():
            remove_stale_temps(log_dir / sub)
    return handle
