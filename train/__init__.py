"""ROS-free training, evaluation and data tooling for md2_ros (run from a checkout: python -m train ...)."""
