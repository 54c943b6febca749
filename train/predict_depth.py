"""Depth predictions for evaluation: read a ``--pred`` file, or run a checkpoint over KITTI frames.

Split out of `train.evaluate_depth` (which scores them); that module re-exports these names.
"""
from __future__ import annotations

import pathlib

import cv2
import numpy as np

from md2_ros.io.kitti import parse_split_line


def load_predictions(path) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Read ``--pred`` -> (N×h×w predictions, 'disp' or 'depth', mirrored disparities or None)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), "disp", None
    with np.load(path, allow_pickle=False) as z:
        if "disp" in z.files:
            preds, kind = z["disp"], "disp"
        elif "depth" in z.files:
            preds, kind = z["depth"], "depth"
        else:
            raise ValueError(f"{path} has neither a 'disp' nor a 'depth' array (keys: {z.files})")
        flip = z["disp_flip"] if "disp_flip" in z.files else None
    if preds.ndim == 4 and preds.shape[1] == 1:
        preds = preds[:, 0]
    if preds.ndim != 3:
        raise ValueError(f"{path}: predictions must be N×h×w, got {preds.shape}")
    return preds, kind, flip


def image_path(data_path, entry: str) -> pathlib.Path:
    """``"<folder> <frame> <l|r>"`` -> the KITTI raw image file (.png, else .jpg)."""
    folder, frame, side = parse_split_line(entry)
    base = pathlib.Path(data_path) / folder / f"image_0{2 if side == 'l' else 3}" / "data" / f"{frame:010d}"
    for ext in (".png", ".jpg"):
        if base.with_suffix(ext).is_file():
            return base.with_suffix(ext)
    raise FileNotFoundError(f"image not found: {base}.png (or .jpg)")


def predict_disparities(model, images, batch_size: int = 8, flip: bool = False):
    """Run a `DepthModel` over RGB uint8 images -> (N×h×w disparities, mirrored ones or None).

    Disparities are ``1 / model.to_depth(sigmoid)`` at the model's input size,
    so they include the model's ``depth_scale`` (metric checkpoints stay metric).
    """
    import torch

    size = (model.height, model.width)

    def run(batch):
        with torch.inference_mode():
            depth = model.to_depth(model.predict_disp_batch(batch, out_size=size))
        return (1.0 / depth).cpu().numpy().astype(np.float32)

    disps, flips = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        disps.append(run(batch))
        if flip:
            flips.append(run([np.ascontiguousarray(img[:, ::-1]) for img in batch]))
    return np.concatenate(disps), (np.concatenate(flips) if flip else None)


def predict_from_checkpoint(checkpoint, data_path, entries, batch_size=8, flip=False, device="auto"):
    """Load a checkpoint and predict disparities for the KITTI frames `entries`
    (lines ``"<folder> <frame> <l|r>"``) -> (disp, disp_flip or None, model); see `predict_disparities`."""
    from tqdm import tqdm

    from md2_ros.core.model import DepthModel

    model = DepthModel.load(checkpoint, device=device)
    disps, flips = [], []
    for start in tqdm(range(0, len(entries), batch_size), desc="predict", unit="batch"):
        images = []
        for entry in entries[start:start + batch_size]:
            path = image_path(data_path, entry)
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot decode image {path}")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        disp, disp_flip = predict_disparities(model, images, batch_size, flip)
        disps.append(disp)
        if flip:
            flips.append(disp_flip)
    return np.concatenate(disps), (np.concatenate(flips) if flip else None), model
