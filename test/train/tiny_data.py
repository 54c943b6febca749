"""A tiny image-folder dataset (64×64 frames of a textured scene panning right) and the ``python -m
train`` options for a fast CPU run on it; shared by the fault tests."""
from pathlib import Path

import cv2
import numpy as np

SIZE = 64


def make_folder(path: Path, n: int = 8, size: int = SIZE) -> Path:
    """``n`` consecutive frames + ``intrinsics.yaml``; deterministic."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (24, 24 + n), np.uint8), (size * 3 + 8 * n, size * 3),
                         interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        frame = texture[:, 8 * i:8 * i + size * 3]
        rgb = np.stack([frame, np.roll(frame, 5, 0), 255 - frame], axis=-1)
        cv2.imwrite(str(path / f"frame{i:03d}.png"), cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))
    (path / "intrinsics.yaml").write_text("fx: 0.58\nfy: 0.58\ncx: 0.5\ncy: 0.5\nnormalised: true\n")
    return path


def train_args(data: Path, log_dir: Path, *extra: str) -> list[str]:
    """Overrides for a few-second CPU training on ``make_folder`` data (posecnn: small checkpoints)."""
    return ["data.kind=folder", f"data.path={data}", "data.num_workers=0", f"height={SIZE}", f"width={SIZE}",
            "batch_size=2", "num_epochs=50", "max_steps=3", "save_every=1", "pose_model_type=posecnn",
            "device=cpu", "progress=false", "epoch_checkpoints=false", "image_every=0", "seed=5",
            f"log_dir={log_dir}", *extra]
