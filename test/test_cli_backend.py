"""md2-depth --backend: auto logs its choice and why, its depth matches eager within the chosen precision's
tolerance, a backend that cannot run here falls back with one line, and bad values are refused."""
import cv2
import numpy as np
import pytest
import torch

from md2_ros.cli import main
from md2_ros.core.backends import PRECISION_TOL, SPECS, max_rel_err
from md2_ros.core.model import DepthModel


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_backend")
    torch.manual_seed(0)
    DepthModel(num_layers=18, height=64, width=96).save(root / "m.safetensors")
    rgb = np.random.default_rng(0).integers(0, 256, (70, 110, 3), dtype=np.uint8)
    assert cv2.imwrite(str(root / "shot.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ref = DepthModel.load(root / "m.safetensors", device="cpu").predict(rgb)
    return root, ref


def run(env, tmp_path, *extra):
    root, _ = env
    return main([str(root / "shot.png"), "--checkpoint", str(root / "m.safetensors"), "--device", "cpu",
                 "-o", str(tmp_path), "--formats", "npy", "--no-progress", *extra])


def test_auto_logs_choice_and_matches_eager(env, tmp_path, capsys):
    assert run(env, tmp_path, "--backend-budget", "3") == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "backend auto chose" in ln)
    chosen = line.split("backend auto chose ")[1].split(" ")[0]
    assert chosen in SPECS and " ms per warm-up batch" in line and "eager: " in line
    depth = np.load(tmp_path / "depth_npy" / "shot.npy")
    assert max_rel_err(depth, env[1]) <= PRECISION_TOL[SPECS[chosen].precision]


def test_unavailable_backend_falls_back_with_one_line(env, tmp_path, capsys):
    assert run(env, tmp_path, "--backend", "tensorrt") == 0
    err = capsys.readouterr().err
    assert err.count("backend tensorrt unavailable, falling back to eager") == 1
    np.testing.assert_allclose(np.load(tmp_path / "depth_npy" / "shot.npy"), env[1], rtol=1e-5)


@pytest.mark.parametrize("extra, cause", [(("--backend", "fastest"), "unknown backend 'fastest'"),
                                          (("--backend-budget", "-1"), "--backend-budget must be >= 0")])
def test_bad_backend_options_are_refused(env, tmp_path, capsys, extra, cause):
    assert run(env, tmp_path, *extra) == 1
    assert cause in capsys.readouterr().err
