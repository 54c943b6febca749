"""Frame-to-frame poses of a trained pose network over a KITTI odometry sequence, in metres when it knows them.

    python -m train.predict_poses --state RUN/checkpoints/last.pt --kitti-odom SEQ_DIR --poses GT.txt --out rel.npy
    python -m train.evaluate_pose --pred rel.npy --gt_poses GT.txt

Writes (N-1)×4×4 relative poses ``inv(P_i)·P_{i+1}`` (the convention of :mod:`train.evaluate_pose`). The
translation is multiplied by the training's metres per network unit: the odometry-tracked
``metres_per_unit`` of a velocity-supervised run, ``STEREO_UNIT`` for stereo, else 1 (relative).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from md2_ros.core.checkpoint import load_state
from md2_ros.core.geometry import transformation_from_parameters

from .config import TrainConfig, _apply
from .networks import Networks
from .objective import STEREO_UNIT
from .sequence_bag import kitti_odometry_sequence


def load_networks(state_path) -> tuple[Networks, TrainConfig, float]:
    """(networks in eval mode, their config, metres per network unit) from a resumable training state."""
    state = load_state(state_path)
    cfg = TrainConfig()
    _apply(cfg, state["config"])
    nets = Networks(cfg)
    nets.load_state_dict(state["nets"])
    if hasattr(nets, "metres_per_unit"):
        unit = float(nets.metres_per_unit)
    else:
        unit = STEREO_UNIT if cfg.use_stereo else 1.0
    return nets.eval(), cfg, unit


@torch.no_grad()
def predict_relative_poses(nets: Networks, images: list[np.ndarray], unit: float = 1.0,
                           batch_size: int = 8) -> np.ndarray:
    """Images (H×W×3 uint8 RGB at the training size, in time order) -> (N-1)×4×4 ``inv(P_i)·P_{i+1}``."""
    if nets.pose is None or nets.pose.input != "pairs":
        raise ValueError("predict_relative_poses needs a pose network fed with pairs (pose_model_input=pairs)")
    x = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0 for im in images])
    out = []
    for start in range(0, len(images) - 1, batch_size):
        stop = min(start + batch_size, len(images) - 1)
        aa, t = nets.pose._run([x[start:stop], x[start + 1:stop + 1]])    # (target i, future i+1)
        T = transformation_from_parameters(aa[:, 0], t[:, 0] * unit)      # X_{i+1} = T X_i
        out.append(torch.linalg.inv(T.double()).numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.predict_poses", description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True, help="resumable training state (…/checkpoints/last.pt)")
    ap.add_argument("--kitti-odom", required=True, help="KITTI odometry sequence folder (image_0/, calib.txt)")
    ap.add_argument("--poses", required=True, help="its poses file (for the frame count check)")
    ap.add_argument("--out", required=True, help="output .npy of relative poses")
    a = ap.parse_args(argv)
    try:
        nets, cfg, unit = load_networks(a.state)
        load, _, stamps, _ = kitti_odometry_sequence(a.kitti_odom, a.poses, size=(cfg.height, cfg.width))
        rel = predict_relative_poses(nets, [load(i) for i in range(len(stamps))], unit)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"predict_poses: error: {exc}", file=sys.stderr)
        return 2
    np.save(a.out, rel)
    print(f"wrote {a.out}: {len(rel)} relative poses (metres per network unit {unit:.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
