"""package.xml that rosdep resolves, and consistent with setup.py and with what installed code imports.

rosdep itself needs the network (rosdistro index); the known-good keys are kept here instead, each
with where it comes from. Add a key only after checking it resolves (``rosdep resolve KEY``).
"""
import ast
import sys
import xml.etree.ElementTree as ET

from ros_helpers import ROOT

# ROS 2 packages of the jazzy/rolling distributions (distribution.yaml release names).
ROS_PACKAGE_KEYS = {
    "rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs", "lifecycle_msgs",
    "builtin_interfaces", "ament_index_python", "launch", "launch_ros", "rviz2",
}
# Rules of rosdistro rosdep/python.yaml that resolve for ubuntu noble / debian (non-deprecated).
PYTHON_KEYS = {
    "python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-rosbags-pip",
    "python3-pytest", "python3-pytest-timeout", "python3-hypothesis", "python3-psutil",
}
KNOWN_GOOD = ROS_PACKAGE_KEYS | PYTHON_KEYS
# Keys seen in the wild that must not come back: not a key anywhere / no rule / deprecated alias.
KNOWN_BAD = {"ament_python", "python3-safetensors-pip", "python3-pytorch-pip", "python3-torch-pip"}

# Third-party top-level imports of installed code -> (rosdep key or None, setup.py requirement or None).
# None as key: no rosdep rule exists; the setup.py pin is then the only declaration (package.xml says so).
IMPORTS = {
    "torch": (None, "torch"), "safetensors": (None, "safetensors"),
    "numpy": ("python3-numpy", "numpy"), "cv2": ("python3-opencv", "opencv-python-headless"),
    "yaml": ("python3-yaml", "pyyaml"), "tqdm": ("python3-tqdm", "tqdm"),
    "rosbags": ("python3-rosbags-pip", "rosbags"),
    "rclpy": ("rclpy", "ros-rclpy"), "rcl_interfaces": ("rcl_interfaces", "ros-rcl-interfaces"),
    "sensor_msgs": ("sensor_msgs", "ros-sensor-msgs"), "std_msgs": ("std_msgs", "ros-std-msgs"),
    "diagnostic_msgs": ("diagnostic_msgs", "ros-diagnostic-msgs"),
    "lifecycle_msgs": ("lifecycle_msgs", "ros-lifecycle-msgs"),
    "ament_index_python": ("ament_index_python", "ros-ament-index-python"),
    "launch": ("launch", None), "launch_ros": ("launch_ros", None),   # not on PyPI (../shared/wheels)
}
# Imported inside functions, only when that feature is asked for -> the setup.py extra that provides it
# (None: no extra; a GPU-only backend the user installs with their CUDA stack, its ImportError is reported).
OPTIONAL = {"onnx": "export", "onnxruntime": "export", "torch_tensorrt": None}
FIRST_PARTY = {"md2_ros", "train"}


def package_xml():
    return ET.parse(ROOT / "package.xml").getroot()


def depends(root, *tags):
    return [e.text.strip() for tag in tags for e in root.findall(tag)]


def setup_call() -> dict:
    """Keyword arguments of setup() in setup.py that are literals (install_requires, extras, ...)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(n.value, ast.Constant) and isinstance(t, ast.Name)}
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id in consts:
            out[kw.arg] = consts[kw.value.id]
            continue
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            pass
    return out


def dist_name(requirement: str) -> str:
    for sep in "<>=![;":
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def installed_imports() -> dict:
    """{top-level module: first file importing it} over md2_ros/ and launch/ (absolute imports only)."""
    found = {}
    for path in sorted(list((ROOT / "md2_ros").rglob("*.py")) + list((ROOT / "launch").glob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_package_xml_is_format_3_ament_python_without_bogus_buildtool():
    root = package_xml()
    assert root.get("format") == "3"
    assert root.find("export/build_type").text.strip() == "ament_python"
    assert "ament_python" not in depends(root, "buildtool_depend")


def test_every_dependency_key_is_a_known_good_rosdep_key():
    keys = depends(package_xml(), "depend", "build_depend", "exec_depend", "buildtool_depend", "test_depend",
                   "build_export_depend")
    assert keys and len(keys) == len(set(keys)), keys
    assert not set(keys) & KNOWN_BAD, set(keys) & KNOWN_BAD
    assert set(keys) <= KNOWN_GOOD, f"not known to resolve: {sorted(set(keys) - KNOWN_GOOD)}"


def test_every_third_party_import_of_installed_code_is_declared():
    setup = setup_call()
    required = {dist_name(r) for r in setup["install_requires"]}
    extras = {name: {dist_name(r) for r in reqs} for name, reqs in setup["extras_require"].items()}
    exec_keys = set(depends(package_xml(), "depend", "exec_depend"))
    third_party = {m: f for m, f in installed_imports().items()
                   if m not in sys.stdlib_module_names and m not in FIRST_PARTY and m != "__future__"}
    unknown = {m: f for m, f in third_party.items() if m not in IMPORTS and m not in OPTIONAL}
    assert not unknown, f"imports with no declared dependency (add to package.xml/setup.py and here): {unknown}"
    for module in third_party:
        if module in OPTIONAL:
            assert OPTIONAL[module] is None or module in extras[OPTIONAL[module]], module
            continue
        key, dist = IMPORTS[module]
        if key is not None:
            assert key in exec_keys, f"{module} ({third_party[module]}) needs <exec_depend>{key}</exec_depend>"
        if dist is not None:
            assert dist in required | extras["ros"], f"{module} needs {dist} in setup.py"
    assert {"torch", "numpy", "cv2", "rclpy", "rosbags"} <= set(third_party)   # the scan sees real imports


def test_setup_py_and_package_xml_agree():
    root, setup = package_xml(), setup_call()
    assert root.find("name").text == setup["name"] == "md2_ros"
    assert root.find("version").text == setup["version"]
    assert root.find("license").text == setup["license"]
    maintainer = root.find("maintainer")
    assert (maintainer.text, maintainer.get("email")) == (setup["maintainer"], setup["maintainer_email"])
    assert (ROOT / "resource" / "md2_ros").is_file()       # the ament index marker data_files installs
    dev = {dist_name(r) for r in setup["extras_require"]["dev"]}
    assert {"colcon-common-extensions", "colcon-ros", "ros-ament-package"} <= dev
