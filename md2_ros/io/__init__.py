"""Adapters for the outside world: ONE module per format, shared by the node, the CLI and training.

``images`` (image files, Image / CompressedImage messages), ``intrinsics`` (CameraInfo, YAML, KITTI
calibration; one scaling rule), ``kitti`` (calibration files, split files, drives), ``stamps``,
``bags`` (open / read / write rosbag2, message type names, one typestore) and ``clouds`` (PointCloud2
packing, PLY). Depends on numpy, OpenCV, PyYAML and rosbags only: never on rclpy, torch or ``train``.
"""
