"""md2_ros.synthetic: determinism, shapes, exact geometry, photometric consistency, KITTI layout."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from md2_ros import synthetic
from md2_ros.io import kitti
from md2_ros.synthetic import make_scene, render_sequence, render_view, write_kitti_layout

H, W = 96, 320


@pytest.fixture(scope="module")
def stereo_seq():
    return render_sequence(num_frames=3, height=H, width=W, seed=0, stereo=True)


def warp_into_target(src, depth_tgt, K, T_tgt_to_src):
    """Sample ``src`` at the projections of the target's pixels (depth_tgt, HxW) moved by T (4x4 tgt->src).

    Returns (warped HxWx3 float, in-bounds mask HxW, source-frame depth of each target pixel HxW, map_x, map_y).
    """
    h, w = depth_tgt.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
    pts = rays * depth_tgt.reshape(-1, 1)
    p = pts @ T_tgt_to_src[:3, :3].T + T_tgt_to_src[:3, 3]
    z = p[:, 2]
    mx = (K[0, 0] * p[:, 0] / z + K[0, 2]).reshape(h, w).astype(np.float32)
    my = (K[1, 1] * p[:, 1] / z + K[1, 2]).reshape(h, w).astype(np.float32)
    out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).astype(np.float64)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1) & (z.reshape(h, w) > 0)
    return out, inside, z.reshape(h, w), mx, my


def visible_mask(depth_src, z_in_src, mx, my, inside):
    """Target pixels whose point is the surface seen by the source camera (not occluded there)."""
    seen = cv2.remap(depth_src, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return inside & (np.abs(seen - z_in_src) < 0.03 * z_in_src)


def mean_abs_error(a, b, mask):
    return float(np.abs(a - b.astype(np.float64)).mean(-1)[mask].mean())


def test_shapes_dtypes_and_ranges(stereo_seq):
    s = stereo_seq
    assert len(s.images) == len(s.depths) == len(s.poses) == len(s.right_images) == len(s.right_depths) == 3
    for img, dep, T in zip(s.images, s.depths, s.poses):
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert dep.shape == (H, W) and dep.dtype == np.float32
        assert np.isfinite(dep).all() and (dep > 0).all()
        assert T.shape == (4, 4) and T.dtype == np.float64
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
        assert img.std() > 20, "the scene should be textured"
    assert s.K.shape == (3, 3) and s.K.dtype == np.float64
    np.testing.assert_allclose(s.K, [[0.58 * W, 0, W / 2], [0, 0.58 * W, H / 2], [0, 0, 1]])
    np.testing.assert_allclose(s.poses[0], np.eye(4))
    assert s.baseline == 0.54 and s.right_images[0].shape == (H, W, 3)
    assert (s.height, s.width) == (H, W)
    # the camera moves forward about 0.5 m per frame and starts turning right (positive yaw)
    step = s.poses[1][:3, 3] - s.poses[0][:3, 3]
    assert abs(np.linalg.norm(step) - 0.5) < 1e-9 and step[2] > 0.49
    R1 = s.poses[1][:3, :3]
    assert np.isclose(np.arctan2(R1[0, 2], R1[2, 2]), 0.01, rtol=0.01)
    mono = render_sequence(num_frames=1, height=8, width=16)
    assert mono.right_images is None and mono.right_depths is None


def test_deterministic_by_seed():
    a = render_sequence(num_frames=2, height=24, width=64, seed=3)
    b = render_sequence(num_frames=2, height=24, width=64, seed=3)
    c = render_sequence(num_frames=2, height=24, width=64, seed=4)
    for x, y in zip(a.images + a.depths, b.images + b.depths):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images[0], c.images[0])


def test_depth_known_answers():
    """No boxes: the centre column's bottom pixel sees the ground, its top pixel the back wall."""
    scene = make_scene(seed=0, travel=2.5)
    scene.boxes = []
    K = synthetic.make_intrinsics(H, W)
    _, depth = render_view(scene, np.eye(4), K, H, W, supersample=1)
    col = W // 2
    assert depth[H - 1, col] == pytest.approx(synthetic.CAMERA_HEIGHT * K[1, 1] / (H - 1 - K[1, 2]), rel=1e-6)
    assert depth[0, col] == pytest.approx(scene.back_z, rel=1e-6)
    # the left wall, seen by the left column's rays at the horizon row: z = wall_left * fx / (u - cx)
    row = int(K[1, 2])
    assert depth[row, 0] == pytest.approx(scene.wall_left * K[0, 0] / (0 - K[0, 2]), rel=1e-6)


def test_temporal_warp_reproduces_frame(stereo_seq):
    """Frame t+1 warped into frame t with the exact depth and pose reproduces frame t; a wrong depth does not."""
    s = stereo_seq
    for t in range(2):
        T = np.linalg.inv(s.poses[t + 1]) @ s.poses[t]  # cam t -> cam t+1
        out, inside, z, mx, my = warp_into_target(s.images[t + 1], s.depths[t], s.K, T)
        valid = visible_mask(s.depths[t + 1], z, mx, my, inside)
        assert valid.mean() > 0.7
        good = mean_abs_error(out, s.images[t], valid)
        assert good < 3.0, f"true depth/pose warp error {good:.2f}/255"
        out_bad, _, _, _, _ = warp_into_target(s.images[t + 1], s.depths[t] * 1.5, s.K, T)
        bad = mean_abs_error(out_bad, s.images[t], valid)
        assert bad > 3.0 * good and bad > 2.5, f"wrong depth error {bad:.2f} vs true {good:.2f}"
        # a wrong pose (no motion) is also clearly worse
        out_id, _, _, _, _ = warp_into_target(s.images[t + 1], s.depths[t], s.K, np.eye(4))
        assert mean_abs_error(out_id, s.images[t], valid) > 2.0 * good


def test_stereo_warp_reproduces_left(stereo_seq):
    s = stereo_seq
    T = np.eye(4)
    T[0, 3] = -s.baseline  # left camera -> right camera coordinates
    out, inside, z, mx, my = warp_into_target(s.right_images[0], s.depths[0], s.K, T)
    valid = visible_mask(s.right_depths[0], z, mx, my, inside)
    np.testing.assert_allclose(my[valid], np.mgrid[0:H, 0:W][0][valid], atol=1e-3)  # rectified: same rows
    good = mean_abs_error(out, s.images[0], valid)
    assert good < 3.0
    out_bad, _, _, _, _ = warp_into_target(s.right_images[0], s.depths[0] * 1.5, s.K, T)
    assert mean_abs_error(out_bad, s.images[0], valid) > 3.0 * good


def test_write_kitti_layout_round_trip(stereo_seq, tmp_path):
    s = stereo_seq
    drive = write_kitti_layout(s, tmp_path)
    assert drive == tmp_path / "2011_09_26" / "2011_09_26_drive_synth_sync"
    for cam, imgs in (("image_02", s.images), ("image_03", s.right_images)):
        files = sorted((drive / cam / "data").glob("*.png"))
        assert [f.name for f in files] == [f"{i:010d}.png" for i in range(3)]
        back = cv2.cvtColor(cv2.imread(str(files[1])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(back, imgs[1])
        assert len((drive / cam / "timestamps.txt").read_text().split("\n")) == 4
    np.testing.assert_array_equal(np.load(drive / "gt_depth" / "0000000002.npy"), s.depths[2])
    poses = np.loadtxt(drive / "poses.txt").reshape(-1, 3, 4)
    np.testing.assert_allclose(poses, np.stack(s.poses)[:, :3], atol=1e-12)
    day = tmp_path / "2011_09_26"
    np.testing.assert_allclose(kitti.load_cam_intrinsics(day, 2)[:, :3], s.K, rtol=1e-12)
    assert kitti.stereo_baseline(day) == pytest.approx(0.54, rel=1e-12)
    assert kitti.load_image_size(day, 2) == (W, H)
    assert kitti.find_drives(tmp_path) == [drive]
    mono = render_sequence(num_frames=1, height=8, width=16)
    mono_drive = write_kitti_layout(mono, tmp_path / "m")
    assert not (mono_drive / "image_03").exists()


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="num_frames"):
        render_sequence(num_frames=0)
    with pytest.raises(ValueError, match="baseline"):
        render_sequence(num_frames=1, stereo=True, baseline=0.0)


def test_no_torch_or_ros_import():
    code = ("import sys, md2_ros.synthetic as s; s.render_sequence(1, 8, 16); "
            "bad = [m for m in ('torch', 'rclpy', 'train') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
