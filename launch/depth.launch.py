"""Launch the md2_ros depth node.

    ros2 launch md2_ros depth.launch.py model_path:=/path/m.safetensors \
        image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch md2_ros depth.launch.py model_path:=... cameras:="cam0 cam1"   # one model, two cameras

Arguments only declare and wire: parameters live in the YAML (``params_file``), topics are
remapped. With ``cameras`` set, each camera's topics are ``<ns>/<cam>/image_raw`` and
``<ns>/<cam>/camera_info`` (no remaps; use namespaces), outputs ``~/<cam>/depth`` etc.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _depth_node(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {"use_sim_time": arg("use_sim_time").lower() in ("true", "1", "yes")}
    if arg("model_path"):
        overrides["model_path"] = arg("model_path")
    cameras = arg("cameras").replace(",", " ").split()
    if cameras:
        overrides["cameras"] = cameras
        remappings = []
    else:
        remappings = [("image_raw", arg("image")), ("image_raw/compressed", arg("image") + "/compressed"),
                      ("camera_info", arg("camera_info"))]
    return [Node(
        package="md2_ros",
        executable="depth_node",
        name=arg("node_name"),
        namespace=arg("namespace"),
        parameters=[arg("params_file"), overrides],
        remappings=remappings,
        output="screen",
    )]


def generate_launch_description():
    share = get_package_share_directory("md2_ros")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "depth.yaml"),
                              description="YAML with /**: ros__parameters"),
        DeclareLaunchArgument("model_path", default_value="", description="overrides model_path in params_file"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="depth_node", description="node name"),
        DeclareLaunchArgument("image", default_value="image_raw", description="input image topic (remap)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="input CameraInfo (remap)"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="space/comma separated camera namespaces served by one model"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        OpaqueFunction(function=_depth_node),
    ])
