"""A damaged bag frame cache (``<bag>.md2frames-*.npy``: truncated, zeroed in place with its mtime kept,
thumbnails overwritten) is detected by its recorded size + CRC-32 and rebuilt, never trained on; a
temp file a killed decoder left is removed."""
import logging
import os

import numpy as np
import pytest

from md2_ros.synthetic import render_sequence, write_kitti_layout
from train.datasets.rosbag import RosbagDataset
from train.make_bag import write_kitti_bag

H, W = 32, 64


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    d = tmp_path_factory.mktemp("cachebag")
    drive = write_kitti_layout(render_sequence(6, H, W, supersample=1), d / "kitti")
    write_kitti_bag(drive, d / "seq.mcap")
    return d / "seq.mcap"


def _open(bag, cache):
    return RosbagDataset(bag, height=H, width=W, num_scales=1, static_threshold=0, cache_dir=cache, is_train=False)


def _frames(ds):
    return [ds.load(i).images[0].copy() for i in range(len(ds))]


def _damage(path, how):
    stat = path.stat()
    if how == "truncate":
        os.truncate(path, stat.st_size // 2)
    else:                                   # overwrite the pixels with zeros, keep size and mtime
        with open(path, "r+b") as f:
            f.seek(128)                     # past the .npy header
            f.write(bytes(stat.st_size - 128))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("target, how", [("frames", "truncate"), ("frames", "zero"), ("thumbs", "zero")])
def test_damaged_cache_is_detected_and_rebuilt(bag, tmp_path, caplog, target, how):
    cache = tmp_path / "cache"
    first = _open(bag, cache)
    good = _frames(first)
    assert first.cache_status == "built" and all(f.any() for f in good)
    suffix = ".thumbs.npy" if target == "thumbs" else "-left.npy"
    (path,) = [p for p in cache.iterdir() if p.name.endswith(suffix)]
    _damage(path, how)
    with caplog.at_level(logging.WARNING):
        again = _open(bag, cache)
    assert again.cache_status == "built", "a damaged cache was reused"
    assert "damaged" in caplog.text and path.name in caplog.text
    for a, b in zip(_frames(again), good):
        assert np.array_equal(a, b)
    assert _open(bag, cache).cache_status == "reused"      # intact now: no rebuild


def test_old_cache_without_checksums_is_rebuilt_and_dead_temps_removed(bag, tmp_path):
    import json
    import subprocess
    import sys

    cache = tmp_path / "cache"
    _open(bag, cache)
    index = cache / f"{bag.name}.md2index.json"
    doc = json.loads(index.read_text())
    for st in doc["streams"].values():
        del st["file_digest"]
    index.write_text(json.dumps(doc))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = cache / f"{bag.name}.md2frames-abc-left.npy.tmp{dead}"
    stale.write_bytes(b"\0" * 4096)
    assert _open(bag, cache).cache_status == "built"
    assert not stale.exists()
