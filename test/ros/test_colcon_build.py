"""colcon build of the package into a temporary workspace, and the layout ROS tools rely on."""
import os
import subprocess
import sys

import pytest

from colcon_ws import install_env
from ros_helpers import ROOT


def run_in(env, *code_or_cmd, timeout=120):
    """Run code (one argument) or a command outside the checkout, so only the install is importable."""
    cmd = [sys.executable, "-c", code_or_cmd[0]] if len(code_or_cmd) == 1 else list(code_or_cmd)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd="/")


def test_installed_share_layout(colcon_install):
    share = colcon_install / "share" / "md2_ros"
    assert (share / "package.xml").read_text() == (ROOT / "package.xml").read_text()
    assert (share / "launch" / "depth.launch.py").is_file()
    assert (share / "config" / "depth.yaml").is_file() and (share / "config" / "depth.rviz").is_file()
    marker = colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "md2_ros"
    assert marker.is_file()
    assert (share / "package.dsv").is_file()        # colcon's environment hooks (source install/setup.bash)


def test_executables_are_where_ros2_run_looks(colcon_install):
    env = install_env(colcon_install)
    # ros2 run <pkg> <exe> = <get_package_prefix(pkg)>/lib/<pkg>/<exe>, executable
    code = ("from ament_index_python.packages import get_package_prefix, get_package_share_directory\n"
            "print(get_package_prefix('md2_ros')); print(get_package_share_directory('md2_ros'))")
    proc = run_in(env, code)
    assert proc.returncode == 0, proc.stderr
    prefix, share = proc.stdout.split()
    assert os.path.samefile(prefix, colcon_install) and os.path.samefile(share, colcon_install / "share/md2_ros")
    lib = colcon_install / "lib" / "md2_ros"
    for exe in ("depth_node", "md2-depth"):
        assert os.access(lib / exe, os.X_OK), exe
    proc = run_in(env, str(lib / "md2-depth"), "--help")
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stderr


def test_installed_node_runs_from_the_install_and_fails_cleanly_without_a_model(colcon_install, tmp_path):
    env = install_env(colcon_install, dict(os.environ, OMP_NUM_THREADS="1"))
    code = "import md2_ros, sys; print(md2_ros.__file__)"
    assert run_in(env, code).stdout.strip().startswith(str(colcon_install))    # the installed copy, not the checkout
    proc = run_in(env, str(colcon_install / "lib/md2_ros/depth_node"), "--ros-args", "-p",
                  "model_path:=/nonexistent.safetensors", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot load model" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["package.xml", "launch/depth.launch.py", "config/depth.rviz"])
def test_install_matches_sources(colcon_install, name):
    assert (colcon_install / "share" / "md2_ros" / name).read_bytes() == (ROOT / name).read_bytes()
