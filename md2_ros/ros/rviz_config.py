"""An rviz2 configuration for one depth node: config/depth.rviz with its topics and fixed frame
set for the node's namespace, name, cameras and the camera's optical frame (used by the launch
file's ``rviz:=true``; also ``python -m md2_ros.ros.rviz_config --namespace robot > my.rviz``)."""
from __future__ import annotations

import argparse
import copy
import pathlib
import sys

import yaml

from .topics import topic_names

CLOUD = "rviz_default_plugins/PointCloud2"
IMAGE = "rviz_default_plugins/Image"


def node_prefix(namespace: str, node_name: str) -> str:
    """Fully qualified node name: '/<namespace>/<node_name>' ('/depth_node' without namespace)."""
    ns = namespace.strip("/")
    return f"/{ns}/{node_name}" if ns else f"/{node_name}"


def resolve_private(topic: str, prefix: str) -> str:
    """'~/a/b' under the node ``prefix`` -> '/ns/node/a/b'."""
    return prefix + "/" + topic[2:] if topic.startswith("~/") else topic


def rviz_config(template: str, namespace: str = "", node_name: str = "depth_node", cameras=(),
                frame_id: str = "camera_optical_frame") -> str:
    """``template`` (depth.rviz text) with one cloud and one colorized-depth display per camera, topics
    resolved for the node, and ``frame_id`` (the camera's optical frame) as rviz's fixed frame."""
    cfg = yaml.safe_load(template)
    manager = cfg["Visualization Manager"]
    displays = manager["Displays"]
    protos = {d["Class"]: d for d in displays if d["Class"] in (CLOUD, IMAGE)}
    if set(protos) != {CLOUD, IMAGE}:
        raise ValueError("rviz template needs one PointCloud2 and one Image display")
    prefix = node_prefix(namespace, node_name)
    out = [d for d in displays if d["Class"] not in (CLOUD, IMAGE)]
    for cam in (list(cameras) or [""]):
        names = topic_names(cam)
        for cls, key, label in ((CLOUD, "points", "Depth cloud"), (IMAGE, "colored", "Colorized depth")):
            display = copy.deepcopy(protos[cls])
            display["Topic"]["Value"] = resolve_private(names[key], prefix)
            display["Name"] = f"{label} {cam}".strip()
            out.append(display)
    manager["Displays"] = out
    manager["Global Options"]["Fixed Frame"] = frame_id.lstrip("/") or "camera_optical_frame"
    return yaml.safe_dump(cfg, sort_keys=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m md2_ros.ros.rviz_config", description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parents[2] / "config" / "depth.rviz")
    ap.add_argument("--namespace", default="")
    ap.add_argument("--node-name", default="depth_node")
    ap.add_argument("--cameras", nargs="*", default=[])
    ap.add_argument("--frame-id", default="camera_optical_frame", help="the camera's optical frame (fixed frame)")
    opts = ap.parse_args(argv)
    sys.stdout.write(rviz_config(opts.template.read_text(), opts.namespace, opts.node_name, opts.cameras,
                                 opts.frame_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
