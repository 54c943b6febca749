"""Build the dataset a training config names (KITTI, a ROS 2 bag, or an image folder)."""
from __future__ import annotations

from pathlib import Path

import torch

from md2_ros.io.kitti import find_drives

from .config import TrainConfig


def build_dataset(cfg: TrainConfig, is_train: bool = True):
    """Return a torch Dataset yielding the sample dict of ``train.datasets.base`` (with the odometry targets
    of velocity supervision attached when ``velocity_weight`` > 0, for training)."""
    dataset = _build(cfg, is_train)
    if cfg.velocity_weight > 0 and is_train:
        from .velocity import attach_odometry
        attach_odometry(cfg, dataset)
    return dataset


def _build(cfg: TrainConfig, is_train: bool):
    from .datasets import ImageFolderDataset, KittiRAWDataset, RosbagDataset

    d = cfg.data
    if not d.path:
        raise ValueError("config: data.path is empty (a KITTI root, a bag, or an image folder)")
    path = Path(d.path).expanduser()
    common = dict(frame_ids=tuple(cfg.frame_ids), height=cfg.height, width=cfg.width, num_scales=4,
                  is_train=is_train)
    if d.kind == "kitti":
        ext = None if d.image_ext == "auto" else d.image_ext
        if d.split == "all" or (path / "image_02").is_dir():
            parts = [KittiRAWDataset.from_folder(p, img_ext=ext, **common) for p in find_drives(path)]
            return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
        return KittiRAWDataset.from_split(path, d.split, "train" if is_train else "val", img_ext=ext, **common)
    if d.kind == "rosbag":
        return RosbagDataset(path, d.image_topic or None, d.camera_info_topic or None, **common,
                             stride=d.stride, max_gap=d.max_gap or None, static_threshold=d.static_threshold,
                             target_motion=d.target_motion, max_stride=max(d.max_stride, d.stride),
                             right_image_topic=d.right_image_topic or None,
                             right_camera_info_topic=d.right_camera_info_topic or None,
                             rectified=d.rectified, undistort=d.undistort)
    return ImageFolderDataset(path, d.intrinsics or None, **common, stride=d.stride)
