"""Build md2_ros with colcon into a temporary workspace, as a ROS user would (``colcon build``).

Used by the colcon test (installed layout) and the real-launch test (which runs the launch file
and the node from that install, found through the ament index like ``ros2 launch``/``ros2 run``).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from ros_helpers import ROOT

# What the package is built from: the ament_python package's own files (no tests, no venv, no data).
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "md2_ros", "launch", "config")


def colcon_executable() -> str:
    """The colcon of this interpreter's environment (the venv's bin/), else the one on PATH."""
    local = pathlib.Path(sys.executable).parent / "colcon"
    found = str(local) if local.exists() else shutil.which("colcon")
    if not found:
        raise FileNotFoundError("colcon not found: pip install colcon-common-extensions colcon-ros "
                                "ros-ament-package (the dev extra of setup.py)")
    return found


def build_workspace(ws: pathlib.Path, timeout: float = 300.0) -> pathlib.Path:
    """Copy the package to ``ws/src/md2_ros``, ``colcon build`` it; return the install prefix of md2_ros.

    Raises RuntimeError with colcon's output when the build fails.
    """
    src = ws / "src" / "md2_ros"
    src.mkdir(parents=True)
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)       # build from the copied sources only
    proc = subprocess.run([colcon_executable(), "--log-base", str(ws / "log"), "build", "--base-paths",
                           str(ws / "src"), "--build-base", str(ws / "build"), "--install-base",
                           str(ws / "install"), "--event-handlers", "console_direct+"],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"colcon build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return ws / "install" / "md2_ros"


def install_env(prefix: pathlib.Path, base=os.environ) -> dict:
    """Environment that ``source install/setup.bash`` would give for the md2_ros prefix (the parts
    ament_index and Python need), on top of ``base``."""
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = dict(base)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), sys.prefix] + [p for p in base.get(
        "AMENT_PREFIX_PATH", "").split(os.pathsep) if p])
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in base.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p and pathlib.Path(p).resolve() != ROOT])
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return env
