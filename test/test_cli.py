"""md2-depth (md2_ros.cli): every input kind, every output format, --bag-out, and clear errors on bad input."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from md2_ros.cli import build_parser, main
from md2_ros.io.clouds import read_ply
from md2_ros.synthetic import render_sequence

rosbags = pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from md2_ros.io.bags import typestore  # noqa: E402

H, W = 64, 160
IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
T0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A random small model saved to disk, the same model loaded for reference, and 4 synthetic frames."""
    from md2_ros.core.model import DepthModel

    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    DepthModel(num_layers=18, height=64, width=192).save(root / "model.safetensors")
    ref = DepthModel.load(root / "model.safetensors", device="cpu")
    seq = render_sequence(num_frames=4, height=H, width=W, seed=1)
    return {"root": root, "ckpt": str(root / "model.safetensors"), "ref": ref, "seq": seq}


def run_cli(env, *args):
    """md2-depth with the eager backend: these tests compare outputs with the eager model at rtol 1e-4
    (test_cli_backend.py covers --backend auto)."""
    return main([*map(str, args), "--checkpoint", env["ckpt"], "--device", "cpu", "--no-progress", "--backend", "eager"])


def write_png(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def check_frame_outputs(out, name, shape):
    """npy / 16-bit PNG / colour PNG exist with the right sizes and dtypes, and the PNG holds the npy in mm."""
    depth = np.load(out / "depth_npy" / f"{name}.npy")
    assert depth.shape == shape and depth.dtype == np.float32 and np.isfinite(depth).all()
    mm = cv2.imread(str(out / "depth_png" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and mm.shape == shape
    np.testing.assert_array_equal(mm, np.clip(np.round(depth.astype(np.float64) * 1000), 0, 65535).astype(np.uint16))
    color = cv2.imread(str(out / "depth_color" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert color.shape == shape + (3,) and color.dtype == np.uint8 and color.std() > 0
    return depth


def check_ply(path, depth, K, rgb=None):
    """All H×W points present in row-major order and equal to depth back-projected through K."""
    info, pts = read_ply(path)
    h, w = depth.shape
    assert info["count"] == h * w and info["properties"] == ["x", "y", "z", "red", "green", "blue"]
    v, u = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(pts["z"], depth.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(pts["x"], ((u - K[0, 2]) / K[0, 0] * depth).reshape(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pts["y"], ((v - K[1, 2]) / K[1, 1] * depth).reshape(-1), rtol=1e-4, atol=1e-5)
    if rgb is not None:
        np.testing.assert_array_equal(np.stack([pts["red"], pts["green"], pts["blue"]], 1), rgb.reshape(-1, 3))
    return info


def test_help_lists_every_option_with_a_sentence(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in build_parser()._actions:
        assert action.help and len(action.help) > 15, action.dest
        for opt in action.option_strings:
            assert opt in text
    out = subprocess.run([sys.executable, "-m", "md2_ros.cli", "--help"], capture_output=True, text=True, check=True)
    assert "--bag-out" in out.stdout and "--intrinsics" in out.stdout


def test_image_file_all_outputs_match_the_model(env, tmp_path, capsys):
    rgb = env["seq"].images[0]
    img = write_png(tmp_path / "shot.png", rgb)
    K = env["seq"].K
    rc = run_cli(env, img, "-o", tmp_path / "out", "--fx", K[0, 0], "--fy", K[1, 1], "--cx", K[0, 2], "--cy", K[1, 2])
    assert rc == 0
    depth = check_frame_outputs(tmp_path / "out", "shot", (H, W))
    np.testing.assert_allclose(depth, env["ref"].predict(rgb), rtol=1e-4)
    check_ply(tmp_path / "out" / "points_ply" / "shot.ply", depth, K, rgb)
    assert "1 frame(s)" in capsys.readouterr().out


def test_folder_every_max_frames_batching_and_scale(env, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, rgb in enumerate(env["seq"].images):
        write_png(folder / f"{i:03d}.png", rgb)
    (folder / "notes.txt").write_text("ignored")
    rc = run_cli(env, folder, "-o", tmp_path / "out", "--batch-size", 3, "--depth-scale", 2.0, "--ply-ascii")
    assert rc == 0
    names = sorted(p.stem for p in (tmp_path / "out" / "depth_npy").glob("*.npy"))
    assert names == ["000", "001", "002", "003"]
    ref = env["ref"].predict(env["seq"].images[3])  # the reference model's scale is 1
    np.testing.assert_allclose(check_frame_outputs(tmp_path / "out", "003", (H, W)), 2.0 * ref, rtol=1e-4)
    assert not list((tmp_path / "out" / "points_ply").glob("*.ply"))
    assert "skipping point clouds" in capsys.readouterr().err

    rc = run_cli(env, folder, "-o", tmp_path / "out2", "--every", 2, "--max-frames", 1, "--formats", "npy")
    assert rc == 0
    assert [p.name for p in (tmp_path / "out2" / "depth_npy").iterdir()] == ["000.npy"]
    assert not (tmp_path / "out2" / "depth_png").exists()


def test_video_with_intrinsics_yaml_scaled(env, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    frames = env["seq"].images + env["seq"].images[:1]
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    K = env["seq"].K
    # intrinsics given for an image twice the size: the CLI must scale them to the frames
    cam = {"fx": 2 * K[0, 0], "fy": 2 * K[1, 1], "cx": 2 * K[0, 2], "cy": 2 * K[1, 2]}
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump({**{k: float(v) for k, v in cam.items()},
                                                       "width": 2 * W, "height": 2 * H}))
    rc = run_cli(env, video, "-o", tmp_path / "out", "--intrinsics", tmp_path / "cam.yaml", "--every", 2)
    assert rc == 0
    names = sorted(p.stem for p in (tmp_path / "out" / "depth_npy").glob("*.npy"))
    assert names == ["frame_000000", "frame_000002", "frame_000004"]
    depth = check_frame_outputs(tmp_path / "out", "frame_000002", (H, W))
    info = check_ply(tmp_path / "out" / "points_ply" / "frame_000002.ply", depth, K)
    assert info["format"] == "binary_little_endian"


def write_bag(path, seq, storage):
    """/cam/image_raw (bgr8, padded rows) + /cam/camera_info (for a 2x image) + a CompressedImage topic."""
    ts = typestore()
    T = ts.types
    K2 = seq.K.copy()
    K2[:2] *= 2
    with Writer(path, version=8, storage_plugin=storage) as w:
        c_info = w.add_connection("/cam/camera_info", INFO, typestore=ts)
        c_img = w.add_connection("/cam/image_raw", IMAGE, typestore=ts)
        c_jpg = w.add_connection("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts)
        for i, rgb in enumerate(seq.images):
            t = T0 + i * 10**8
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                              frame_id="cam_optical")
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
            P = np.hstack([K2, np.zeros((3, 1))])
            info = T[INFO](header=header, height=2 * H, width=2 * W, distortion_model="plumb_bob", d=np.zeros(5),
                           k=K2.reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12), binning_x=0, binning_y=0, roi=roi)
            w.write(c_info, t, ts.serialize_cdr(info, INFO))
            padded = np.zeros((H, 3 * W + 8), np.uint8)
            padded[:, : 3 * W] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).reshape(H, -1)
            img = T[IMAGE](header=header, height=H, width=W, encoding="bgr8", is_bigendian=0, step=3 * W + 8,
                           data=padded.reshape(-1))
            w.write(c_img, t + 1000, ts.serialize_cdr(img, IMAGE))
            png = np.frombuffer(cv2.imencode(".png", rgb[..., ::-1])[1], np.uint8)  # lossless, BGR in
            jpg = T["sensor_msgs/msg/CompressedImage"](header=header, format="png", data=png)
            w.write(c_jpg, t + 2000, ts.serialize_cdr(jpg, jpg.__msgtype__))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_input_with_camera_info_and_bag_out(env, tmp_path, storage):
    seq = env["seq"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    write_bag(tmp_path / "in", seq, plugin)
    bag_file = tmp_path / "in" / ("in.mcap" if storage == "mcap" else "in.db3")
    out = tmp_path / "out"
    rc = run_cli(env, bag_file, "-o", out, "--topic", "/cam/image_raw", "--bag-out", tmp_path / "res.mcap",
                 "--batch-size", 2)
    assert rc == 0
    for i, rgb in enumerate(seq.images):
        depth = check_frame_outputs(out, f"frame_{i:06d}", (H, W))
        np.testing.assert_allclose(depth, env["ref"].predict(rgb), rtol=1e-4)  # bgr8 + row padding decoded right
    check_ply(out / "points_ply" / "frame_000001.ply", np.load(out / "depth_npy" / "frame_000001.npy"), seq.K,
              seq.images[1])  # K from CameraInfo, rescaled from 2x to the image size

    res = tmp_path / "res"
    assert (res / "res.mcap").is_file() and (res / "metadata.yaml").is_file()
    with AnyReader([res], default_typestore=typestore()) as reader:
        counts = {t: i.msgcount for t, i in reader.topics.items()}
        assert counts == {"/cam/image_raw": 4, "/cam/camera_info": 4, "/md2/depth": 4,
                          "/md2/depth/camera_info": 4, "/md2/points": 4}
        conns = [c for c in reader.connections if c.topic in ("/md2/depth", "/md2/points")]
        msgs = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conns)]
    depth_msgs = [m for topic, _, m in msgs if topic == "/md2/depth"]
    clouds = [m for topic, _, m in msgs if topic == "/md2/points"]
    d0 = depth_msgs[0]
    assert (d0.encoding, d0.height, d0.width, d0.step) == ("32FC1", H, W, 4 * W)
    assert d0.header.frame_id == "cam_optical" and d0.header.stamp.sec * 10**9 + d0.header.stamp.nanosec == T0
    np.testing.assert_array_equal(d0.data.view("<f4").reshape(H, W), np.load(out / "depth_npy" / "frame_000000.npy"))
    c = clouds[2]
    assert (c.height, c.width, c.point_step, c.row_step, c.is_dense) == (H, W, 16, 16 * W, False)
    assert [(f.name, f.offset, f.datatype) for f in c.fields] == [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7)]
    xyzc = c.data.view("<f4").reshape(H, W, 4)
    np.testing.assert_array_equal(xyzc[..., 2], np.load(out / "depth_npy" / "frame_000002.npy"))
    rgb_bits = xyzc[..., 3].view(np.uint32)
    np.testing.assert_array_equal(rgb_bits >> 16, seq.images[2][..., 0])
    assert all(t == T0 + i * 10**8 + 1000 for i, (_, t, _) in enumerate(m for m in msgs if m[0] == "/md2/depth"))


def test_bag_compressed_topic_and_topic_choice(env, tmp_path, capsys):
    write_bag(tmp_path / "in", env["seq"], StoragePlugin.MCAP)
    assert run_cli(env, tmp_path / "in", "-o", tmp_path / "o1") == 1  # two image topics: must choose
    err = capsys.readouterr().err
    assert "several image topics" in err and "/cam/image_raw/compressed" in err and "--topic" in err
    assert run_cli(env, tmp_path / "in", "-o", tmp_path / "o2", "--topic", "/nope") == 1
    assert "/nope" in capsys.readouterr().err
    rc = run_cli(env, tmp_path / "in", "-o", tmp_path / "o3", "--topic", "/cam/image_raw/compressed", "--max-frames", 2)
    assert rc == 0
    assert len(list((tmp_path / "o3" / "points_ply").glob("*.ply"))) == 2  # sibling /cam/camera_info found
    np.testing.assert_allclose(np.load(tmp_path / "o3" / "depth_npy" / "frame_000001.npy"),
                               env["ref"].predict(env["seq"].images[1]), rtol=1e-4)


def test_bad_input_gives_clear_error_and_nonzero_exit(env, tmp_path, capsys):
    def fails(*args, expect):
        assert run_cli(env, *args, "-o", tmp_path / "out") == 1
        err = capsys.readouterr().err
        assert "md2-depth: error:" in err and expect in err, err

    fails(tmp_path / "missing.png", expect="input not found")
    (tmp_path / "data.xyz").write_text("1 2 3")
    fails(tmp_path / "data.xyz", expect="unknown input type '.xyz'")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    fails(tmp_path / "broken.png", expect="truncated PNG (no IEND chunk): ")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", expect="contains no images")
    (tmp_path / "bad.avi").write_bytes(b"RIFF0000AVI garbage")
    fails(tmp_path / "bad.avi", expect="bad.avi")
    good = write_png(tmp_path / "ok.png", env["seq"].images[0])
    fails(good, "--fx", 100, expect="must be given together")
    fails(good, "--formats", "npy,gif", expect="--formats")
    fails(good, "--every", 0, expect="--every must be >= 1")
    fails(good, "--intrinsics", tmp_path / "none.yaml", expect="intrinsics file not found")
    assert main([str(good), "--checkpoint", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "o")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse usage errors exit 2
        main([str(good)])
    assert exc.value.code == 2


@pytest.mark.parametrize("binary", [True, False])
def test_write_ply_round_trip_drops_invalid(tmp_path, binary):
    from md2_ros.io.clouds import depth_to_points, write_ply

    depth = np.array([[1.0, np.nan], [2.0, -1.0]], np.float32)
    K = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert write_ply(tmp_path / "p.ply", depth_to_points(depth, K), rgb, binary=binary) == 2
    info, pts = read_ply(tmp_path / "p.ply")
    assert info["count"] == 2 and info["format"] == ("binary_little_endian" if binary else "ascii")
    np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], 1), [[-0.25, -0.25, 1.0], [-0.5, 0.5, 2.0]])
    np.testing.assert_array_equal(pts["red"], [0, 6])
