"""md2-depth --camera-height: relative depth becomes metres from the ground plane (fake network that
predicts the synthetic scene's exact depth / an unknown factor), and a no-ground input stays relative."""
import cv2
import numpy as np
import pytest

from md2_ros import cli
from md2_ros.core import backends
from md2_ros.core import model as model_mod
from md2_ros.synthetic import CAMERA_HEIGHT, render_sequence

FACTOR = 3.7


class FakeModel:
    metric, scale_source = False, ""

    def __init__(self, lookup):
        self.lookup = lookup
        self.config = type("C", (), {"depth_scale": 1.0})()

    def predict_batch(self, images):
        return [self.lookup.get(img.tobytes(), np.full(img.shape[:2], 5.0, np.float32)) / FACTOR for img in images]


@pytest.fixture
def scene(tmp_path, monkeypatch):
    seq = render_sequence(3, 64, 192, seed=6, supersample=1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(seq.images):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "0003.png"), np.full((64, 192, 3), 90, np.uint8))      # a frame with no ground
    fake = FakeModel({img.tobytes(): d for img, d in zip(seq.images, seq.depths)})
    monkeypatch.setattr(model_mod.DepthModel, "load", classmethod(lambda cls, *a, **k: fake))
    monkeypatch.setattr(backends, "make_backend", lambda name, model, *a, **k: model)   # the fake runs as it is
    K = seq.K
    return seq, folder, ["--fx", str(K[0, 0]), "--fy", str(K[1, 1]), "--cx", str(K[0, 2]), "--cy", str(K[1, 2])]


def test_camera_height_gives_metres(scene, tmp_path, capsys):
    seq, folder, intr = scene
    out = tmp_path / "out"
    assert cli.main([str(folder), "--checkpoint", "x", "-o", str(out), "--formats", "npy", "--no-progress",
                     "--camera-height", str(CAMERA_HEIGHT)] + intr) == 0
    for i in range(3):
        depth = np.load(out / "depth_npy" / f"{i:04d}.npy")
        assert np.median(depth / seq.depths[i]) == pytest.approx(1.0, rel=0.03)
    wall = np.load(out / "depth_npy" / "0003.npy")             # no ground: keeps the smoothed scale
    np.testing.assert_allclose(wall, 5.0, rtol=0.03)
    assert "'camera_height': 4" in capsys.readouterr().out


def test_no_intrinsics_or_no_ground_stays_relative(scene, tmp_path, caplog):
    _, folder, _ = scene
    out = tmp_path / "out2"
    assert cli.main([str(folder), "--checkpoint", "x", "-o", str(out), "--formats", "npy", "--no-progress",
                     "--camera-height", "1.65"]) == 0
    np.testing.assert_allclose(np.load(out / "depth_npy" / "0003.npy"), 5.0 / FACTOR, rtol=1e-6)
    assert "ground scale unset: no intrinsics" in caplog.text
    assert cli.main([str(folder), "--checkpoint", "x", "-o", str(out), "--camera-height", "-1"]) == 1
