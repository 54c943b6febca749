"""md2_ros: self-supervised monocular depth (Monodepth2) for ROS 2.

Subpackages: ``core`` (pure torch), ``ros`` (rclpy node), plus ``synthetic``
(a procedurally rendered test scene) and ``cli`` (offline inference).
"""

__version__ = "0.1.0"
