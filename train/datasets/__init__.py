"""Training datasets: KITTI raw/odometry, ROS 2 bags, image folders — all yield the same sample dict.

See `train.datasets.base` for the sample contract and `train.datasets.augment` for augmentation.
"""
from .augment import ColorJitterParams, apply_color_jitter, sample_color_jitter
from md2_ros.io.images import ImageDecodeError

from .base import RawSample, SequenceDataset, build_sample, worker_init_fn
from .folder import ImageFolderDataset, load_intrinsics_yaml
from .kitti import KNOWN_SPLITS, KittiOdomDataset, KittiRAWDataset, read_split, split_file
from .rosbag import BagError, RosbagDataset

__all__ = ["ColorJitterParams", "apply_color_jitter", "sample_color_jitter", "ImageDecodeError", "RawSample",
           "SequenceDataset", "build_sample", "worker_init_fn", "ImageFolderDataset", "load_intrinsics_yaml", "KNOWN_SPLITS",
           "KittiOdomDataset", "KittiRAWDataset", "read_split", "split_file", "BagError", "RosbagDataset"]
