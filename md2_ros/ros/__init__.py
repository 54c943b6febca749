"""ROS 2 adapters: message conversions, the depth node and its pip-only runner.

``conversions`` and ``intrinsics`` need only the message packages; ``depth_node``
needs rclpy. Nothing here is imported by ``md2_ros.core``.
"""
