"""launch/depth.launch.py run by the real launch + launch_ros (../shared/wheels), from a colcon install,
with a small model: outputs, remaps, parameters, lifecycle state, rviz:=true, and Ctrl-C within
launch's grace period (5 s before it escalates to SIGTERM)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from colcon_ws import install_env
from md2_ros.ros import conversions as cv
from md2_ros.ros.conversions import camera_info_from_kitti
from ros_helpers import Harness, header, write_params

DRIVER = os.path.join(os.path.dirname(__file__), "launch_driver.py")
K_FULL = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.0027]])
GRACE_S = 5.0                       # launch's default sigterm_timeout
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_launch():
    """Skip (fail under MD2_REQUIRE_SHARED=1) unless the real launch and launch_ros are installed."""
    try:
        proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                               "import launch_driver; launch_driver.ensure_composition_interfaces(); "
                               "import launch, launch_ros.actions", os.path.dirname(DRIVER)],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("importing launch/launch_ros took over 60 s")
    if proc.returncode != 0:
        msg = ("needs the real launch/launch_ros: pip install ../shared/wheels/*.whl (make venv does it)\n"
               + proc.stderr[-2000:])
        if os.environ.get("MD2_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


class Launch:
    """``launch_driver.py <installed depth.launch.py> args...`` in its own process group."""

    def __init__(self, prefix, tmp, *args):
        env = install_env(prefix, dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp),
                                       ROS_LOG_DIR=str(tmp / "roslog")))
        self.tmp = tmp
        self.log_path = tmp / "launch.log"
        self._log = open(self.log_path, "w")
        launch_file = prefix / "share" / "md2_ros" / "launch" / "depth.launch.py"
        self.proc = subprocess.Popen([sys.executable, DRIVER, str(launch_file), *args], env=env, cwd=tmp,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def interrupt(self, timeout=30.0) -> float:
        """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group (launch then does
        not send its own SIGINT to the nodes, it assumes they got the terminal's); seconds until exit."""
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._log.close()
        return time.monotonic() - t0


def lifecycle_state(h, node):
    from lifecycle_msgs.srv import GetState
    return h.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label


def get_params(h, node, *names):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python
    res = h.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=list(names)))
    return {n: parameter_value_to_python(v) for n, v in zip(names, res.values)}


def frame(sec, w=96, h=32):
    rgb = np.random.default_rng(sec).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv.numpy_to_image(rgb, "rgb8", header(sec, 0, "cam_optical")), \
        camera_info_from_kitti(K_FULL, w, h, "cam_optical", w / 1242, h / 375)


def no_profiles_in(tmp) -> bool:
    return not list(tmp.glob("md2_fastdds_*"))


def test_launch_runs_the_lifecycle_node_remapped_and_stops_on_ctrl_c(real_launch, colcon_install, small_model_path,
                                                                     tmp_path):
    params = write_params(tmp_path / "p.yaml", "", backend="eager", torch_threads=1)   # model_path from the argument
    launch = Launch(colcon_install, tmp_path, f"model_path:={small_model_path}", "namespace:=robot",
                    "node_name:=md2", "image:=/cam/image_raw", "camera_info:=/cam/camera_info",
                    f"params_file:={params}")
    h = Harness(name="md2_launch_harness", node_ns="/robot/md2", compressed=False, inputs="/cam")
    try:
        assert h.wait_connected(timeout=90), "node did not come up:\n" + launch.log()
        assert lifecycle_state(h, "/robot/md2") == "active"
        params = get_params(h, "/robot/md2", "model_path", "autostart", "image_transport", "rectify", "use_sim_time")
        assert params == {"model_path": str(small_model_path), "autostart": True, "image_transport": "raw",
                          "rectify": True, "use_sim_time": False}
        for sec in (10, 11):
            msg, info = frame(sec)
            out = h.send(msg, info, wait_for=("depth", "depth/camera_info", "points"), timeout=30)
            assert all(v is not None for v in out.values()), (out, launch.log())
            assert out["depth"].header.stamp.sec == sec and (out["depth"].width, out["depth"].height) == (96, 32)
        assert no_profiles_in(tmp_path), "Fast DDS profile left in TMPDIR while running"
    finally:
        h.close()
        seconds = launch.interrupt()
    log = launch.log()
    assert seconds < GRACE_S, f"Ctrl-C took {seconds:.1f} s:\n{log}"
    assert "SIGTERM" not in log and "SIGKILL" not in log, log
    assert "Traceback" not in log, log
    assert launch.proc.returncode == 0, log
    assert no_profiles_in(tmp_path)


def test_launch_autostart_false_stays_unconfigured_and_rviz_without_rviz2_says_so(real_launch, colcon_install,
                                                                                  small_model_path, tmp_path):
    launch = Launch(colcon_install, tmp_path, f"model_path:={small_model_path}", "autostart:=false", "rviz:=true",
                    "image_transport:=compressed")      # unconfigured: no backend is built
    h = Harness(name="md2_launch_harness2", compressed=False)
    try:
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401 - Harness records /diagnostics
        assert h.wait(lambda: h.latest_status("depth_node")[0] is not None, 90), "no diagnostics:\n" + launch.log()
        assert lifecycle_state(h, "/depth_node") == "unconfigured"
        assert h.latest_status("depth_node")[1]["lifecycle_state"] == "unconfigured"
        assert get_params(h, "/depth_node", "image_transport") == {"image_transport": "compressed"}
    finally:
        h.close()
        seconds = launch.interrupt()
    log = launch.log()
    assert "rviz2 is not installed" in log, log
    assert seconds < GRACE_S and "SIGTERM" not in log, f"{seconds:.1f} s\n{log}"
