"""ament_python / pip install for md2_ros (see setup.cfg for install dirs)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "md2_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    # train/ is deliberately not installed: it runs from a checkout (`python -m train`), and a
    # top-level package called "train" would collide with other projects in site-packages.
    packages=find_packages(include=["md2_ros", "md2_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "torch==2.13.0",
        "numpy>=2,<3",
        "opencv-python-headless>=4.8,<5",
        "safetensors>=0.4",
        "pyyaml>=6",
        "tqdm>=4.60",
        "rosbags>=0.10",
    ],
    extras_require={
        "ros": [
            "ros-rclpy[fastrtps]==9.1.2",
            "ros-sensor-msgs==5.5.1",
            "ros-std-msgs==5.5.1",
            "ros-diagnostic-msgs",
            "ros-lifecycle-msgs",
            "ros-rcl-interfaces",
            "ros-ament-index-python",
        ],
        "export": ["onnx>=1.15", "onnxruntime>=1.17"],
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "tensorboard>=2.15",
            "psutil>=5.9",
            "matplotlib>=3.7",     # bench/learning.py --plot: the learning curve PNG
            "onnx>=1.15",          # ONNX export tests (same as the export extra)
            "onnxruntime>=1.17",
            # the colcon build test (test/ros/test_colcon_build.py): what a ROS user builds with
            "colcon-common-extensions>=0.3",
            "colcon-ros>=0.5",
            "ros-ament-package>=0.16",
            # launch_ros's run-time needs (the launch/launch_ros wheels come from ../shared/wheels, see Makefile)
            "osrf-pycommon>=2",
            "lark-parser>=0.12",
        ],
    },
    zip_safe=True,
    maintainer="md2_ros developers",
    maintainer_email="md2_ros@example.com",
    description="Self-supervised monocular depth (Monodepth2) as a ROS 2 package",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "depth_node = md2_ros.ros.depth_node:main",
            "md2-depth = md2_ros.cli:main",
            "md2-export = md2_ros.export_cli:main",
        ],
    },
)
