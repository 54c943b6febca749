"""Launch the md2_ros depth node (a lifecycle node).

    ros2 launch md2_ros depth.launch.py model_path:=/path/m.safetensors \
        image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch md2_ros depth.launch.py model_path:=... cameras:="cam0 cam1"   # one model, two cameras
    ros2 launch md2_ros depth.launch.py model_path:=... rviz:=true frame_id:=camera_optical_frame

Arguments only declare and wire: parameters live in the YAML (``params_file``; the arguments
image_transport, rectify and autostart override it when given), topics are remapped. With
``cameras`` set, each camera's topics are ``<ns>/<cam>/image_raw`` and ``<ns>/<cam>/camera_info``
(no remaps; use namespaces), outputs ``~/<cam>/depth/image_rect`` etc. ``rviz:=true`` starts rviz2
with config/depth.rviz rewritten for this node's topics and ``frame_id`` (written to launch's log
directory), or says clearly that rviz2 is not installed.
"""
import os
import shutil

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

TRUE = ("true", "1", "yes", "on")


def _flag(value: str, name: str) -> bool:
    if value.lower() not in TRUE + ("false", "0", "no", "off"):
        raise ValueError(f"launch argument {name}:={value!r} must be true or false")
    return value.lower() in TRUE


def _overrides(arg) -> dict:
    """Parameter overrides from the launch arguments (empty arguments leave the YAML's value)."""
    out = {"use_sim_time": _flag(arg("use_sim_time"), "use_sim_time"), "autostart": _flag(arg("autostart"),
                                                                                           "autostart")}
    if arg("model_path"):
        out["model_path"] = arg("model_path")
    if arg("image_transport"):
        out["image_transport"] = arg("image_transport")
    if arg("rectify"):
        out["rectify"] = _flag(arg("rectify"), "rectify")
    cameras = arg("cameras").replace(",", " ").split()
    if cameras:
        out["cameras"] = cameras
    return out


def _remappings(arg, overrides: dict) -> list:
    """image:= remaps the one image topic the node subscribes (image_raw, or image_rect with rectify:=false)."""
    if "cameras" in overrides:
        return []
    base = "image_raw" if overrides.get("rectify", True) else "image_rect"
    remaps = []
    if arg("image"):
        remaps += [(base, arg("image")), (f"{base}/compressed", arg("image") + "/compressed")]
    if arg("camera_info"):
        remaps.append(("camera_info", arg("camera_info")))
    return remaps


def _rviz(arg, share: str, cameras: list) -> list:
    if not _flag(arg("rviz"), "rviz"):
        return []
    exe = shutil.which("rviz2")
    if exe is None:
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                            "the depth node runs without it")]
    import launch.logging
    from md2_ros.ros.rviz_config import rviz_config
    with open(os.path.join(share, "config", "depth.rviz")) as f:
        text = rviz_config(f.read(), arg("namespace"), arg("node_name"), cameras, arg("frame_id"))
    path = os.path.join(launch.logging.launch_config.log_dir, f"md2_{arg('node_name')}.rviz")
    with open(path, "w") as f:
        f.write(text)
    return [LogInfo(msg=f"rviz config: {path}"),
            ExecuteProcess(cmd=[exe, "-d", path], output="screen", name="rviz2")]


def _launch(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    share = get_package_share_directory("md2_ros")
    overrides = _overrides(arg)
    node = LifecycleNode(
        package="md2_ros",
        executable="depth_node",
        name=arg("node_name"),
        namespace=arg("namespace"),
        parameters=[arg("params_file") or os.path.join(share, "config", "depth.yaml"), overrides],
        remappings=_remappings(arg, overrides),
        output="screen",
    )
    return [node] + _rviz(arg, share, overrides.get("cameras", []))


def generate_launch_description():
    args = [
        ("params_file", "", "YAML with /**: ros__parameters (default: the package's config/depth.yaml)"),
        ("model_path", "", "overrides model_path in params_file"),
        ("namespace", "", "node namespace"),
        ("node_name", "depth_node", "node name"),
        ("image", "", "remap the input image topic (image_raw, or image_rect with rectify:=false)"),
        ("camera_info", "", "remap the input CameraInfo topic"),
        ("cameras", "", "space/comma separated camera namespaces served by one model"),
        ("image_transport", "", "raw | compressed (default: params_file's, raw)"),
        ("rectify", "", "true: rectify image_raw with camera_info; false: subscribe image_rect (default: true)"),
        ("autostart", "true", "configure and activate the lifecycle node by itself; false: stays unconfigured "
                              "until a lifecycle manager drives it"),
        ("use_sim_time", "false", "use /clock (bag replay)"),
        ("rviz", "false", "also start rviz2 showing the cloud and the colorized depth"),
        ("frame_id", "camera_optical_frame", "the camera's optical frame_id (rviz fixed frame)"),
    ]
    return LaunchDescription([DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in args] +
                             [OpaqueFunction(function=_launch)])
