"""ROS test fixtures: an isolated ROS domain, a small random checkpoint, the KITTI sample."""
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ros_helpers import isolate_ros_env  # noqa: E402

DOMAIN_ID = isolate_ros_env()


@pytest.fixture(scope="session", autouse=True)
def ros_log_dir(tmp_path_factory):
    """rcl file logs of this session (test process and node subprocesses) under pytest's tmp dir."""
    path = tmp_path_factory.mktemp("roslog")
    old = os.environ.get("ROS_LOG_DIR")
    os.environ["ROS_LOG_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ROS_LOG_DIR", None)
    else:
        os.environ["ROS_LOG_DIR"] = old


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory) -> pathlib.Path:
    """Random-weight DepthModel (ResNet18, 192×64 network input) saved as safetensors."""
    from md2_ros.core.model import DepthModel
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    DepthModel(num_layers=18, height=64, width=192).save(path)
    return path


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory) -> pathlib.Path:
    """md2_ros built with ``colcon build`` in a temporary workspace: its install prefix."""
    from colcon_ws import build_workspace
    return build_workspace(tmp_path_factory.mktemp("colcon_ws"))
