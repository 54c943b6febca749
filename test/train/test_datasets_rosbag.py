"""RosbagDataset: same tensors as the KITTI loader, cache, static filtering, stereo, broken bags."""
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from md2_ros.io.bags import typestore

from md2_ros.io import kitti as kcalib
from train.datasets.bagcache import BagError
from train.datasets.base import worker_init_fn
from train.datasets.kitti import KittiRAWDataset
from train.datasets.rosbag import RosbagDataset
from train.make_bag import write_kitti_bag

DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync"
H, W = 64, 192
TS = typestore()
T = TS.types


@pytest.fixture(scope="module")
def bags(kitti_mini, tmp_path_factory):
    """Bags of frames 0..7 in every flavour, plus frames 30..77 for the static filter."""
    d = tmp_path_factory.mktemp("bags")
    out = {}
    for name, kw in [("img.mcap", {}), ("img.db3", {}), ("png.mcap", {"compressed": True}),
                     ("png.db3", {"compressed": True})]:
        out[name] = d / name
        write_kitti_bag(kitti_mini / DRIVE, out[name], frames=(0, 8), **kw)
    out["tail.mcap"] = d / "tail.mcap"
    write_kitti_bag(kitti_mini / DRIVE, out["tail.mcap"], frames=(30, 78))
    return out


def _write(path, entries, storage=StoragePlugin.MCAP):
    """entries: [(topic, msgtype, stamp_ns, msg or None)]; None registers the topic without a message."""
    with Writer(path, version=9, storage_plugin=storage) as w:
        conns = {}
        for topic, typ, stamp, msg in entries:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=TS)
            if msg is not None:
                w.write(conns[topic], stamp, TS.serialize_cdr(msg, typ))
    return path


def _header(ns):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id="cam")


def _image(ns, rgb, encoding="rgb8", step=None, bigendian=0, data=None):
    h, w = rgb.shape[:2]
    data = rgb.reshape(-1) if data is None else data
    step = step or data.size // h
    return T["sensor_msgs/msg/Image"](header=_header(ns), height=h, width=w, encoding=encoding,
                                      is_bigendian=bigendian, step=step, data=data)


def _info(ns, w, h, d=(0.0,) * 5, fx=100.0):
    K = np.array([fx, 0, w / 2, 0, fx, h / 2, 0, 0, 1.0])
    P = np.array([fx, 0, w / 2, 0, 0, fx, h / 2, 0, 0, 0, 1.0, 0])
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ns), height=h, width=w, distortion_model="plumb_bob", d=np.array(d, float), k=K,
        r=np.eye(3).reshape(-1), p=P, binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


@pytest.mark.parametrize("name", ["img.mcap", "img.db3", "png.mcap", "png.db3"])
def test_bag_gives_same_tensors_as_kitti(bags, kitti_mini, name):
    kitti = KittiRAWDataset(kitti_mini, [f"{DRIVE} {f} l" for f in range(1, 7)], height=H, width=W, is_train=False)
    bag = RosbagDataset(bags[name], height=H, width=W, is_train=False, static_threshold=0)
    assert len(bag) == len(kitti) == 6 and bag.skipped == {"no neighbour (sequence end)": 2}
    assert bag.image_topic.startswith("/camera/image_raw") and bag.camera_info_topic == "/camera/camera_info"
    for i in (0, 5):
        a, b = kitti[i], bag[i]
        assert a.keys() == b.keys()
        for key in a:
            if key != "index":
                assert torch.equal(a[key], b[key]), key
    P = kcalib.load_cam_intrinsics(kitti_mini / "2011_09_26", 2)
    assert bag[0][("K", 1)][0, 0].item() == pytest.approx(P[0, 0] * (W // 2) / 1242, rel=1e-6)
    assert bag.stamps[1] - bag.stamps[0] == 100_000_000  # frame_index / 10 Hz


def test_static_filter_drops_the_still_tail(bags):
    ds = RosbagDataset(bags["tail.mcap"], height=H, width=W, is_train=False)  # default threshold 0.005
    dropped = ds.skipped.get("static", 0)
    assert 5 <= dropped <= 20, ds.stats
    kept_frames = {30 + round((s - ds.stamps[0]) / 1e8) + 1 for s in ds.stamps}
    assert max(kept_frames) < 70  # the last (still) frames are gone
    assert set(range(31, 55)) <= kept_frames  # the moving part is kept
    stricter = RosbagDataset(bags["tail.mcap"], height=H, width=W, is_train=False, static_threshold=0.01)
    assert stricter.cache_status == "reindexed" and stricter.skipped["static"] > dropped + 5
    assert "static" not in RosbagDataset(bags["tail.mcap"], height=H, width=W, static_threshold=0).skipped


def test_cache_reused_and_invalidated(bags, tmp_path):
    bag = tmp_path / "copy.mcap"
    shutil.copy(bags["img.mcap"], bag)
    first = RosbagDataset(bag, height=H, width=W)
    assert first.cache_status == "built" and (tmp_path / "copy.mcap.md2index.json").exists()
    npys = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert RosbagDataset(bag, height=H, width=W).cache_status == "reused"
    assert RosbagDataset(bag, height=H, width=W, frame_ids=(0, 1)).cache_status == "reindexed"
    assert RosbagDataset(bag, height=H // 2, width=W // 2).cache_status == "built"  # decode params changed
    assert RosbagDataset(bag, height=H, width=W).cache_status == "built"
    st = bag.stat()
    os.utime(bag, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the bag changed
    again = RosbagDataset(bag, height=H, width=W)
    assert again.cache_status == "built" and sorted(p.name for p in tmp_path.glob("*.npy")) == npys
    assert RosbagDataset(bag, height=H, width=W, rebuild=True).cache_status == "built"
    cache = tmp_path / "elsewhere"
    assert RosbagDataset(bag, height=H, width=W, cache_dir=cache).cache_status == "built"
    assert (cache / "copy.mcap.md2index.json").exists()


def test_dataloader_workers(bags):
    ds = RosbagDataset(bags["img.db3"], height=H, width=W, static_threshold=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False, worker_init_fn=worker_init_fn)
    batches = list(loader)
    assert len(batches) == 2 and batches[0][("color_aug", 1, 0)].shape == (3, 3, H, W)
    assert batches[1]["index"].tolist() == [3, 4, 5]


def test_stereo_bag(kitti_mini, tmp_path):
    src = tmp_path / "kitti"
    drive = src / DRIVE
    for cam in (2, 3):
        (drive / f"image_0{cam}" / "data").mkdir(parents=True)
    shutil.copy(kitti_mini / "2011_09_26" / "calib_cam_to_cam.txt", src / "2011_09_26")
    for f in range(4):
        img = cv2.imread(str(kitti_mini / DRIVE / "image_02" / "data" / f"{f:010d}.png"))
        cv2.imwrite(str(drive / "image_02" / "data" / f"{f:010d}.png"), img)
        cv2.imwrite(str(drive / "image_03" / "data" / f"{f:010d}.png"), np.roll(img, -8, axis=1))
    bag = write_kitti_bag(drive, tmp_path / "stereo.mcap", stereo=True, compressed=True)["path"]
    with pytest.raises(ValueError, match="right_image_topic"):
        RosbagDataset(bag, frame_ids=(0, "s"), height=H, width=W)
    ds = RosbagDataset(bag, "/camera/left/image_raw/compressed", frame_ids=(0, -1, 1, "s"), height=H, width=W,
                       is_train=False, static_threshold=0, right_image_topic="/camera/right/image_raw/compressed")
    kitti = KittiRAWDataset(src, [f"{DRIVE} {f} l" for f in range(4)], frame_ids=(0, -1, 1, "s"), height=H,
                            width=W, is_train=False)
    B = kcalib.stereo_baseline(src / "2011_09_26")
    assert len(ds) == 2 and ds.baseline == pytest.approx(B, rel=1e-9)
    a, b = kitti[1], ds[1]
    for key in a:
        if key != "index":
            assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert b["stereo_T"][0, 3].item() == pytest.approx(-B)


def test_broken_bags_name_the_file(bags, tmp_path):
    rgb = np.zeros((8, 16, 3), np.uint8)
    for name in ("img.mcap", "img.db3"):
        cut = tmp_path / ("cut_" + name)
        data = bags[name].read_bytes()
        cut.write_bytes(data[: len(data) * 3 // 4])
        with pytest.raises(BagError, match=f"cut_{name}.*truncated"):
            RosbagDataset(cut, height=H, width=W)
    empty = _write(tmp_path / "empty.mcap", [("/camera/image_raw", "sensor_msgs/msg/Image", 0, None)])
    with pytest.raises(BagError, match="empty.mcap is empty"):
        RosbagDataset(empty, height=H, width=W)
    nothing = _write(tmp_path / "nothing.db3", [], storage=StoragePlugin.SQLITE3)
    with pytest.raises(BagError, match="nothing.db3 is empty"):
        RosbagDataset(nothing, height=H, width=W)
    noinfo = _write(tmp_path / "noinfo.mcap", [("/cam/image_raw", "sensor_msgs/msg/Image", i * 10**8,
                                                _image(i * 10**8 + 1, rgb)) for i in range(3)])
    with pytest.raises(BagError, match="noinfo.mcap has no sensor_msgs/msg/CameraInfo"):
        RosbagDataset(noinfo, height=8, width=16, num_scales=1)
    with pytest.raises(BagError, match="noinfo.mcap: topic /nope is not in this bag"):
        RosbagDataset(noinfo, "/nope", height=8, width=16, num_scales=1)
    with pytest.raises(FileNotFoundError, match="missing.mcap"):
        RosbagDataset(tmp_path / "missing.mcap")


def test_distortion_rules_and_undistort(tmp_path):
    rng = np.random.default_rng(1)
    entries = []
    for i in range(4):
        ns = (i + 1) * 10**8
        entries += [("/cam/image_raw", "sensor_msgs/msg/Image", ns, _image(ns, rng.integers(0, 255, (16, 32, 3),
                                                                                        dtype=np.uint8))),
                    ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", ns, _info(ns, 32, 16, d=(-0.2, 0.05, 0, 0, 0)))]
    bag = _write(tmp_path / "dist.mcap", entries)
    with pytest.raises(BagError, match="distortion.*data.rectified=true.*data.undistort=true"):
        RosbagDataset(bag, height=16, width=32, num_scales=1)
    ds = RosbagDataset(bag, height=16, width=32, num_scales=1, undistort=True, static_threshold=0, is_train=False)
    assert len(ds) == 2 and ds[0][("K", 0)][0, 0].item() == pytest.approx(100.0)
    assert RosbagDataset(bag, height=16, width=32, num_scales=1, rectified=True, static_threshold=0,
                         cache_dir=tmp_path / "c2").cache_status == "built"


def test_undecodable_messages_skipped_or_explained(tmp_path):
    rng = np.random.default_rng(3)
    entries = [("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 1, _info(1, 32, 16))]
    for i in range(6):
        ns = (i + 1) * 10**8
        ok, png = cv2.imencode(".png", rng.integers(0, 255, (16, 32, 3), dtype=np.uint8))
        data = png.reshape(-1) if i != 3 else np.frombuffer(b"not an image", np.uint8)
        entries.append(("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", ns,
                        T["sensor_msgs/msg/CompressedImage"](header=_header(ns), format="png", data=data)))
    ds = RosbagDataset(_write(tmp_path / "one_bad.mcap", entries), height=16, width=32, num_scales=1,
                       static_threshold=0, max_gap=0.15)
    # frame 3 is gone: targets 2 and 4 (whose neighbours straddle it) are out, as are the two sequence ends
    assert ds.skipped == {"undecodable message": 1, "no neighbour (sequence end)": 2, "gap over max_gap": 2}
    assert len(ds) == 1 and ds.stamps == [2 * 10**8]
    gray = np.zeros((16, 32), np.uint8)
    bad = [("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 1, _info(1, 32, 16))] + [
        ("/cam/image_raw", "sensor_msgs/msg/Image", i, _image(i, gray, "32FC1", data=np.zeros(16 * 128, np.uint8)))
        for i in range(1, 4)]
    with pytest.raises(BagError, match="could be decoded.*unsupported image encoding '32FC1'"):
        RosbagDataset(_write(tmp_path / "float.mcap", bad), height=16, width=32, num_scales=1)


def test_motion_spaced_sources_follow_the_slowing_car(bags):
    """``target_motion``: on the decelerating tail each source moves out until its thumbnail difference reaches the
    target (and no nearer one does), never past ``max_stride``; the slow end keeps training samples."""
    fixed = RosbagDataset(bags["tail.mcap"], height=H, width=W, is_train=False)
    ds = RosbagDataset(bags["tail.mcap"], height=H, width=W, is_train=False, target_motion=0.04, max_stride=6)
    assert ds.cache_status == "reindexed" and len(ds) > len(fixed)
    assert ds.skipped["static"] < fixed.skipped["static"]   # only targets with no later message far enough
    thumbs = np.load(ds.cache_dir / ds._doc["streams"]["left"]["thumbs"]).astype(np.float32)
    n = len(thumbs)

    def motion(a, b):
        return np.abs(thumbs[a] - thumbs[b]).mean() / 255.0

    offsets = []
    for target, prev, nxt in ds._rows:        # message rows (frame ids 0, -1, 1), in stamp order (frames 30..77)
        for src in (prev, nxt):
            step = abs(src - target)
            sign = 1 if src > target else -1
            assert 1 <= step <= 6
            assert motion(target, src) >= 0.04 or step == 6 or src in (0, n - 1), (target, src)
            if step > 1:                       # the first that reaches it: the one nearer does not
                assert motion(target, src - sign) < 0.04, (target, src)
        offsets.append(nxt - target)
    assert offsets[0] < offsets[-1] and max(offsets) == 6
    assert RosbagDataset(bags["tail.mcap"], height=H, width=W, is_train=False)._rows == fixed._rows


def test_motion_spaced_sources_never_cross_a_gap(tmp_path):
    rng = np.random.default_rng(4)
    texture = cv2.resize(rng.integers(0, 255, (8, 40), dtype=np.uint8), (160, 16), interpolation=cv2.INTER_CUBIC)
    entries = [("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 1, _info(1, 32, 16))]
    stamps = [i * 10**8 for i in range(1, 6)] + [i * 10**8 for i in range(20, 25)]  # 1.5 s without messages
    for k, ns in enumerate(stamps):
        frame = np.repeat(texture[:, k:k + 32, None], 3, axis=2)   # one pixel of pan per message: slow
        entries.append(("/cam/image_raw", "sensor_msgs/msg/Image", ns, _image(ns, np.ascontiguousarray(frame))))
    ds = RosbagDataset(_write(tmp_path / "gap.mcap", entries), height=16, width=32, num_scales=1,
                       static_threshold=0, target_motion=0.9, max_stride=8)   # unreachable: go as far as allowed
    for target, prev, nxt in ds._rows:
        side = target < 5
        assert (prev < 5) == side and (nxt < 5) == side
        assert {prev, nxt} == ({0, 4} if side else {5, 9})
