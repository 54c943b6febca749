"""DepthModel, decoders, checkpoints (own format, official layout, unsafe pickles)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from md2_ros.core.checkpoint import CheckpointError, import_official_pose, load_state, save_state
from md2_ros.core.depth_decoder import DepthDecoder
from md2_ros.core.model import DepthModel, ModelConfig, import_official, load_model
from md2_ros.core.pose_cnn import PoseCNN
from md2_ros.core.pose_decoder import PoseDecoder
from md2_ros.core.resnet import ResnetEncoder


def _count(*mods):
    return sum(p.numel() for m in mods for p in m.parameters())


def test_parameter_counts_match_paper():
    depth = DepthModel(18)
    pose_enc = ResnetEncoder(18, num_input_images=2)
    pose_dec = PoseDecoder(pose_enc.num_ch_enc, 1, 2)
    n_depth, n_pose = _count(depth) / 1e6, _count(pose_enc, pose_dec) / 1e6
    print(f"\nparameters: depth net ResNet18 = {n_depth:.2f} M, pose net (separate ResNet18) = {n_pose:.2f} M")
    assert abs(n_depth - 14.33) <= 0.05
    assert abs(n_pose - 12.5) <= 0.1


def test_depth_decoder_scales_and_range():
    enc = ResnetEncoder(18)
    dec = DepthDecoder(enc.num_ch_enc)
    out = dec(enc(torch.rand(2, 3, 64, 96)))
    assert set(out) == {("disp", s) for s in range(4)}
    for s in range(4):
        d = out[("disp", s)]
        assert d.shape == (2, 1, 64 >> s, 96 >> s) and d.min() >= 0 and d.max() <= 1
    assert len(dec.state_dict()) == 28 and "decoder.9.conv.conv.weight" in dec.state_dict()
    assert "decoder.13.conv.weight" in dec.state_dict()


def test_pose_decoder_and_posecnn_shapes():
    enc = ResnetEncoder(18, 2)
    aa, t = PoseDecoder(enc.num_ch_enc, 1, 2)([enc(torch.rand(3, 6, 64, 96))])
    assert aa.shape == (3, 2, 1, 3) and t.shape == (3, 2, 1, 3)
    aa, t = PoseCNN(3)(torch.rand(2, 9, 64, 96))
    assert aa.shape == (2, 2, 1, 3) and t.shape == (2, 2, 1, 3)


def test_model_config_validation():
    with pytest.raises(ValueError, match="multiples of 32"):
        ModelConfig(height=100)
    with pytest.raises(ValueError, match="min_depth"):
        ModelConfig(min_depth=10, max_depth=1)
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"bogus": 1})


def test_predict_returns_depth_at_image_size():
    m = DepthModel(18, 64, 192, depth_scale=2.0).setup_inference("cpu")
    img = (np.random.default_rng(0).random((75, 250, 3)) * 255).astype(np.uint8)
    d = m.predict(img)
    assert d.shape == (75, 250) and d.dtype == np.float32
    assert np.isfinite(d).all() and d.min() >= 0.1 * 2.0 - 1e-5 and d.max() <= 100.0 * 2.0 + 1e-3
    batch = m.predict_batch([img, img])
    np.testing.assert_allclose(batch[0], d, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        m.predict(img.astype(np.float32))
    with pytest.raises(ValueError):
        m.setup_inference("tpu")


def test_save_load_roundtrip(tmp_path):
    m = DepthModel(18, 64, 192, depth_scale=5.4, metric=True).eval()
    p = tmp_path / "m.safetensors"
    m.save(p)
    m2 = DepthModel.load(p, device="cpu")
    assert m2.config == m.config
    x = torch.rand(1, 3, 64, 192)
    with torch.no_grad():
        torch.testing.assert_close(m2(x)[("disp", 0)], m(x)[("disp", 0)])
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.safetensors"):
        load_model(tmp_path / "missing.safetensors")
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_model(bad)
    p = tmp_path / "m.safetensors"
    DepthModel(18, 64, 192).save(p)
    p.write_bytes(p.read_bytes()[:-1000])  # torn file
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_model(p)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/md2_ros_pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        pickle.dump({"state": _Evil()}, f)
    torch.save({"x": _Evil()}, tmp_path / "evil2.pth")
    for path in (p, tmp_path / "evil2.pth"):
        with pytest.raises(CheckpointError, match=path.name):
            load_state(path)
    assert not os.path.exists("/tmp/md2_ros_pwned")


def test_training_state_roundtrip(tmp_path):
    state = {"step": 7, "rng": torch.get_rng_state(), "opt": {"lr": 1e-4, "t": [torch.ones(2)]}}
    save_state(tmp_path / "s.pt", state)
    back = load_state(tmp_path / "s.pt")
    assert back["step"] == 7 and torch.equal(back["rng"], state["rng"])


def _official_folder(tmp_path, stereo=False):
    """Build official-layout files from the layout rules (see DESIGN.md), with random weights."""
    g = torch.Generator().manual_seed(0)
    enc = ResnetEncoder(18)
    enc_state = {f"encoder.{k}": (torch.randn(v.shape, generator=g) * 0.05 if v.is_floating_point() else v)
                 for k, v in enc.state_dict().items()}
    enc_state["encoder.fc.weight"] = torch.randn(1000, 512)
    enc_state["encoder.fc.bias"] = torch.randn(1000)
    assert len(enc_state) == 122
    torch.save({**enc_state, "height": 192, "width": 640, "use_stereo": stereo}, tmp_path / "encoder.pth")
    chans = [(512, 256), (512, 256), (256, 128), (256, 128), (128, 64), (128, 64), (64, 32), (96, 32),
             (32, 16), (16, 16)]
    dec = {}
    for i, (cin, cout) in enumerate(chans):
        dec[f"decoder.{i}.conv.conv.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        dec[f"decoder.{i}.conv.conv.bias"] = torch.randn(cout, generator=g) * 0.05
    for i, cin in zip(range(10, 14), (16, 32, 64, 128)):
        dec[f"decoder.{i}.conv.weight"] = torch.randn(1, cin, 3, 3, generator=g) * 0.05
        dec[f"decoder.{i}.conv.bias"] = torch.randn(1, generator=g) * 0.05
    assert len(dec) == 28
    torch.save(dec, tmp_path / "depth.pth")
    pose_enc = dict(enc_state)
    pose_enc["encoder.conv1.weight"] = torch.randn(64, 6, 7, 7, generator=g) * 0.05
    torch.save({**pose_enc, "height": 192, "width": 640}, tmp_path / "pose_encoder.pth")
    pose = {"net.0.weight": torch.randn(256, 512, 1, 1), "net.0.bias": torch.randn(256),
            "net.1.weight": torch.randn(256, 256, 3, 3), "net.1.bias": torch.randn(256),
            "net.2.weight": torch.randn(256, 256, 3, 3), "net.2.bias": torch.randn(256),
            "net.3.weight": torch.randn(12, 256, 1, 1), "net.3.bias": torch.randn(12)}
    torch.save(pose, tmp_path / "pose.pth")
    return enc_state, dec


def test_official_layout_imports_strictly(tmp_path):
    enc_state, dec = _official_folder(tmp_path, stereo=True)
    m = import_official(tmp_path)
    assert (m.height, m.width, m.metric, m.depth_scale) == (192, 640, True, 5.4)
    assert torch.equal(m.encoder.layer2[0].downsample[0].weight, enc_state["encoder.layer2.0.downsample.0.weight"])
    assert torch.equal(m.decoder.decoder[7].conv.conv.weight, dec["decoder.7.conv.conv.weight"])
    assert torch.equal(m.decoder.decoder[13].conv.weight, dec["decoder.13.conv.weight"])
    assert isinstance(load_model(tmp_path), DepthModel)  # a folder path works everywhere a model path does
    pe, pd = import_official_pose(tmp_path)
    assert pe.conv1.weight.shape == (64, 6, 7, 7) and pd.num_frames == 2
    # a wrong layout is refused, naming the file
    bad = dict(dec)
    bad["decoder.7.conv.conv.weight"] = torch.randn(32, 64, 3, 3)
    torch.save(bad, tmp_path / "depth.pth")
    with pytest.raises(CheckpointError, match="depth.pth"):
        import_official(tmp_path)


def test_core_never_imports_ros_or_train():
    code = ("import sys, md2_ros.core.model, md2_ros.core.checkpoint, md2_ros.core.losses, md2_ros.core.geometry, "
            "md2_ros.core.pose_cnn, md2_ros.core.pose_decoder\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'cv_bridge', 'train', 'sensor_msgs', "
            "'torchvision') or m.startswith('md2_ros.ros')]\nprint(bad)\nassert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
