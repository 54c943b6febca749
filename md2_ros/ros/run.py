"""Start the depth node from the launch YAML without ``ros2 launch`` (pip-only installs).

    python -m md2_ros.ros.run --params-file config/depth.yaml [--namespace ns] \
        [--cameras cam0 cam1] [--model-path m.safetensors] [--param key:=value ...] \
        [--remap image_raw:=/camera/image_raw ...]

It only builds rcl arguments (``--ros-args --params-file ... -r __ns:=... -p ...``), so the
YAML is parsed by rcl exactly as ``ros2 launch``/``ros2 run`` would parse it.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from md2_ros.io.intrinsics import read_yaml_mapping


def check_params_file(path: pathlib.Path) -> dict:
    """Load ``path`` and return its ``ros__parameters`` for ``/**`` (or the first node entry).

    Raises SystemExit with the reason if the file is missing or not a ROS 2 parameter file.
    """
    try:
        data = read_yaml_mapping(path, "params file", "'/**: ros__parameters: {...}'")
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("ros__parameters"), dict):
            raise SystemExit(f"params file {path}: entry {key!r} has no 'ros__parameters' mapping")
    entry = data.get("/**") or next(iter(data.values()))
    return entry["ros__parameters"]


def build_ros_args(opts: argparse.Namespace) -> list[str]:
    """rcl command-line arguments equivalent to the launch file's Node action."""
    args = ["--ros-args", "--params-file", str(opts.params_file)]
    if opts.name:
        args += ["-r", f"__node:={opts.name}"]
    if opts.namespace:
        args += ["-r", f"__ns:=/{opts.namespace.strip('/')}"]
    if opts.cameras:
        args += ["-p", "cameras:=[" + ",".join(opts.cameras) + "]"]
    if opts.model_path:
        args += ["-p", f"model_path:={opts.model_path}"]
    for p in opts.param or []:
        args += ["-p", p]
    for r in opts.remap or []:
        args += ["-r", r]
    if opts.log_level:
        args += ["--log-level", opts.log_level]
    return args


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m md2_ros.ros.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params-file", type=pathlib.Path, required=True, help="e.g. config/depth.yaml")
    ap.add_argument("--namespace", default="", help="node namespace (topics are relative to it)")
    ap.add_argument("--name", default="", help="node name (default depth_node)")
    ap.add_argument("--cameras", nargs="+", help="camera namespaces served by this process")
    ap.add_argument("--model-path", help="overrides model_path from the YAML")
    ap.add_argument("--param", action="append", metavar="KEY:=VALUE", help="extra parameter override")
    ap.add_argument("--remap", action="append", metavar="FROM:=TO", help="topic remap, e.g. image_raw:=/cam/image")
    ap.add_argument("--log-level", choices=["debug", "info", "warn", "error", "fatal"])
    return ap


def main(argv=None) -> int:
    opts = parser().parse_args(argv)
    check_params_file(opts.params_file)
    from .depth_node import main as node_main   # imports rclpy and torch: after the cheap checks
    return node_main([sys.argv[0]] + build_ros_args(opts))


if __name__ == "__main__":
    raise SystemExit(main())
