"""launch/depth.launch.py, config/depth.yaml, config/depth.rviz and md2_ros.ros.run, fast and without
the launch packages: the launch file runs here against minimal stand-ins that record what it builds
(test_launch_real.py runs it with the real launch + launch_ros). The checks are that every parameter
and remap it names exists in the node, and that the YAML it points to is a valid parameter file."""
import importlib.util
import re
import sys
import types

import pytest
import yaml

from md2_ros.ros import params
from md2_ros.ros.rviz_config import rviz_config
from md2_ros.ros.topics import topic_names
from md2_ros.ros.run import build_ros_args, check_params_file, parser
from ros_helpers import ROOT

LAUNCH = ROOT / "launch" / "depth.launch.py"


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


@pytest.fixture
def launch_module(monkeypatch, tmp_path):
    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch.logging", "launch_ros", "launch_ros.actions",
        "ament_index_python", "ament_index_python.packages")}
    mods["launch"].LaunchDescription = lambda actions: list(actions)
    mods["launch"].logging = mods["launch.logging"]
    mods["launch.logging"].launch_config = types.SimpleNamespace(log_dir=str(tmp_path))
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "LogInfo", "ExecuteProcess"):
        setattr(mods["launch.actions"], name, type(name, (_Recorder,), {}))
    mods["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    mods["launch_ros.actions"].LifecycleNode = type("LifecycleNode", (_Recorder,), {})
    mods["ament_index_python.packages"].get_package_share_directory = lambda pkg: str(ROOT)
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("depth_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(module, **overrides):
    """(declared defaults, the LifecycleNode's kwargs, the other actions) for launch arguments ``overrides``."""
    actions = module.generate_launch_description()
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if "default_value" in a.kwargs}
    assert set(overrides) <= set(declared), set(overrides) - set(declared)
    opaque = [a for a in actions if "function" in a.kwargs]
    assert len(opaque) == 1
    node, *others = opaque[0].kwargs["function"]({**declared, **overrides})
    assert type(node).__name__ == "LifecycleNode"
    return declared, node.kwargs, others


def test_launch_declares_the_documented_arguments(launch_module):
    declared, node, others = _run(launch_module)
    assert {"params_file", "namespace", "node_name", "image", "camera_info", "use_sim_time", "cameras", "model_path",
            "image_transport", "rectify", "autostart", "rviz", "frame_id"} <= set(declared)
    assert node["parameters"][0] == str(ROOT / "config" / "depth.yaml") and others == []
    assert node["package"] == "md2_ros" and node["executable"] == "depth_node"
    assert node["remappings"] == [] and node["parameters"][1] == {"use_sim_time": False, "autostart": True}
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"depth_node\s*=\s*md2_ros\.ros\.depth_node:main"', setup)


@pytest.mark.parametrize("rectify", ["", "true", "false"])
def test_launch_remaps_and_parameters_exist_in_node(launch_module, rectify):
    _, node, _ = _run(launch_module, image="/cam/image", camera_info="/cam/info", model_path="/m.safetensors",
                      use_sim_time="true", namespace="robot", rectify=rectify, image_transport="compressed",
                      autostart="false")
    raw = topic_names("", rectify != "false", "raw")["image"]
    assert dict(node["remappings"]) == {raw: "/cam/image", raw + "/compressed": "/cam/image/compressed",
                                        "camera_info": "/cam/info"}
    yaml_path, overrides = node["parameters"]
    assert yaml_path.endswith("config/depth.yaml")
    expected = {"use_sim_time": True, "autostart": False, "model_path": "/m.safetensors",
                "image_transport": "compressed"}
    assert overrides == {**expected, **({"rectify": rectify == "true"} if rectify else {})}
    assert set(overrides) <= set(params.SPECS) | {"use_sim_time"}
    assert node["namespace"] == "robot"


def test_launch_multi_camera(launch_module):
    _, node, _ = _run(launch_module, cameras="cam0, cam1")
    assert node["parameters"][1]["cameras"] == ["cam0", "cam1"] and node["remappings"] == []


def test_launch_rejects_a_bad_flag(launch_module):
    with pytest.raises(ValueError, match="autostart"):
        _run(launch_module, autostart="maybe")


def test_launch_rviz_without_rviz2_says_so(launch_module, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    _, _, others = _run(launch_module, rviz="true")
    (log,) = others
    assert type(log).__name__ == "LogInfo" and "rviz2 is not installed" in log.kwargs["msg"]


def test_launch_rviz_gets_a_config_for_this_node_and_frame(launch_module, monkeypatch, tmp_path):
    monkeypatch.setattr("shutil.which", lambda name: "/opt/ros/bin/rviz2" if name == "rviz2" else None)
    _, _, others = _run(launch_module, rviz="true", namespace="robot", node_name="md2", cameras="left right",
                        frame_id="/left_optical")
    (log, proc) = others
    exe, flag, path = proc.kwargs["cmd"]
    assert (exe, flag) == ("/opt/ros/bin/rviz2", "-d") and path.startswith(str(tmp_path)) and path in log.kwargs["msg"]
    cfg = yaml.safe_load(open(path).read())
    topics = [d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics == ["/robot/md2/left/depth/points", "/robot/md2/left/depth/colorized",
                      "/robot/md2/right/depth/points", "/robot/md2/right/depth/colorized"]
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "left_optical"


def test_depth_yaml_is_a_valid_parameter_file_for_the_node():
    values = check_params_file(ROOT / "config" / "depth.yaml")
    assert set(values) <= set(params.SPECS), set(values) - set(params.SPECS)
    for name, value in values.items():      # ROS parameters are typed: 1 is not 1.0
        default = params.SPECS[name].default
        if default is not None:
            assert type(value) is type(default), (name, value)
    assert params.validate({**{n: s.default for n, s in params.SPECS.items()}, **values, "cameras": []}) is None


def test_rviz_config_shows_cloud_and_colorized_depth():
    text = (ROOT / "config" / "depth.rviz").read_text()
    cfg = yaml.safe_load(text)
    displays = {d["Class"]: d for d in cfg["Visualization Manager"]["Displays"]}
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == "/depth_node/" + topic_names("")["points"][2:]
    assert cloud["Color Transformer"] == "RGB8"
    image = displays["rviz_default_plugins/Image"]
    assert image["Topic"]["Value"] == "/depth_node/" + topic_names("")["colored"][2:]
    generated = yaml.safe_load(rviz_config(text))          # for the default node: the same displays and frame
    topics = [[d.get("Topic", {}).get("Value") for d in c["Visualization Manager"]["Displays"]] for c in (cfg,
                                                                                                         generated)]
    assert topics[0] == topics[1]
    assert generated["Visualization Manager"]["Global Options"] == cfg["Visualization Manager"]["Global Options"]


def test_run_builds_rcl_arguments(tmp_path):
    opts = parser().parse_args(["--params-file", "config/depth.yaml", "--namespace", "/robot/", "--cameras",
                                "cam0", "cam1", "--model-path", "/m.st", "--param", "cloud_stride:=4",
                                "--remap", "cam0/image_raw:=/left/image"])
    assert build_ros_args(opts) == [
        "--ros-args", "--params-file", "config/depth.yaml", "-r", "__ns:=/robot", "-p", "cameras:=[cam0,cam1]",
        "-p", "model_path:=/m.st", "-p", "cloud_stride:=4", "-r", "cam0/image_raw:=/left/image"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("depth_node:\n  parameters: {}\n")
    with pytest.raises(SystemExit, match="ros__parameters"):
        check_params_file(bad)
    with pytest.raises(SystemExit, match="params file not found"):
        check_params_file(tmp_path / "missing.yaml")


def test_fastdds_profile_only_when_unconfigured(tmp_path):
    import os
    from md2_ros.ros.transport import configure_fastdds, profile_xml, remove_profile
    env = {}
    path = configure_fastdds(env)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == path
    text = open(path).read()
    remove_profile(path)
    remove_profile(path)            # idempotent
    assert not os.path.exists(path)
    assert text == profile_xml() and "<segment_size>33554432</segment_size>" in text
    assert configure_fastdds({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) is None
    assert configure_fastdds({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) is None
    assert configure_fastdds({"MD2_FASTDDS_SHM_MB": "0"}) is None
    with pytest.raises(ValueError, match="MD2_FASTDDS_SHM_MB"):
        configure_fastdds({"MD2_FASTDDS_SHM_MB": "big"})


@pytest.mark.parametrize("extra, code, message", [
    (["--model-path", "/nonexistent/m.safetensors"], 1, "cannot load model"),
    (["--param", "colormap:=nope"], 2, "colormap 'nope' unknown"),
    (["--param", "depth_scale:=2"], 2, "invalid parameters"),       # an integer for a double parameter
])
def test_node_start_failures_exit_with_reason(extra, code, message):
    import subprocess
    yaml_path = str(ROOT / "config" / "depth.yaml")
    cmd = [sys.executable, "-m", "md2_ros.ros.run", "--params-file", yaml_path, "--model-path", "/nonexistent/m.st"]
    proc = subprocess.run(cmd + extra, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr + proc.stdout
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
