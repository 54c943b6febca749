"""Pure-torch Monodepth2 core: networks, geometry, losses, inference, checkpoints.

Never imports rclpy or the ``train`` package (a test enforces it).
"""
