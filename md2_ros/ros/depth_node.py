"""The md2_ros depth node (lifecycle): camera images in; depth, colorized depth and clouds out.

Per camera (``cameras`` parameter; empty = one camera at the node namespace):

    in:  <cam>/image_raw (sensor_msgs/Image), <cam>/image_raw/compressed (if use_compressed),
         <cam>/camera_info                 -- sensor-data QoS (best effort, keep last 1)
    out: ~/<cam>/depth (32FC1, metres, NaN invalid), ~/<cam>/depth/camera_info,
         ~/<cam>/depth_colored (bgr8), ~/<cam>/points (organized PointCloud2)
         /diagnostics (DiagnosticArray)

Every output carries the input image's header unchanged. The executor thread only
stores the newest message per camera (older unprocessed ones are dropped and counted);
one worker thread decodes, runs the model once per wake-up (cameras with the same image
size share a batch) and publishes. One model is loaded per process.
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from . import params
from .conversions import ConversionError
from .diagnostics import to_status
from .pipeline import CameraPipeline, Settings, run_batch
from .transport import configure_fastdds

SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
WARN_PERIOD_S = 5.0
RUNTIME = tuple(n for n, s in params.SPECS.items() if not s.read_only)


def topic_names(camera: str) -> dict:
    """Input and output topic names for one camera namespace ('' = the node namespace)."""
    pre = f"{camera}/" if camera else ""
    return {
        "image": f"{pre}image_raw", "compressed": f"{pre}image_raw/compressed", "camera_info": f"{pre}camera_info",
        "depth": f"~/{pre}depth", "depth_info": f"~/{pre}depth/camera_info",
        "colored": f"~/{pre}depth_colored", "points": f"~/{pre}points",
    }


class DepthNode(LifecycleNode):
    """See the module docstring. With ``autostart`` (default) it configures and activates itself."""

    def __init__(self, node_name: str = "depth_node", model=None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.values = params.declare(self)
        reason = params.validate(self.values)
        if reason:
            raise ValueError(reason)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.settings = Settings().updated(self.values)
        self.cameras = [CameraPipeline(ns) for ns in (self.values["cameras"] or [""])]
        self.model = model                      # injected model (tests) or loaded in on_configure
        self.predictor = None                   # the inference backend built from the model in on_configure
        self._injected = model is not None
        self._pubs: dict = {}
        self._subs: list = []
        self._diag_pub = self._diag_timer = self._worker = None
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._last_warn: dict = {}
        self._warned_scale = False
        self.active = False
        if self.values["autostart"]:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # -- logging -------------------------------------------------------------------------
    def warn_throttled(self, key: str, text: str, period: float = WARN_PERIOD_S) -> None:
        """Log ``text`` at most once per ``period`` seconds per ``key``."""
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e18) >= period:
            self._last_warn[key] = now
            self.get_logger().warning(text)

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state):
        try:
            self._load_model()
        except Exception as e:  # noqa: BLE001 - any load failure is reported and fails the transition
            self.get_logger().error(f"cannot load model {self.values['model_path']!r}: {e}")
            return TransitionCallbackReturn.FAILURE
        for cam in self.cameras:
            t = topic_names(cam.name)
            self._pubs[cam.name] = {
                "depth": self.create_lifecycle_publisher(Image, t["depth"], OUTPUT_QOS),
                "depth_info": self.create_lifecycle_publisher(CameraInfo, t["depth_info"], OUTPUT_QOS),
                "colored": self.create_lifecycle_publisher(Image, t["colored"], OUTPUT_QOS),
                "points": self.create_lifecycle_publisher(PointCloud2, t["points"], OUTPUT_QOS),
            }
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        return TransitionCallbackReturn.SUCCESS

    def _load_model(self) -> None:
        if self.model is None:
            import torch
            from md2_ros.core.model import DepthModel
            if self.values["torch_threads"] > 0:
                torch.set_num_threads(self.values["torch_threads"])
            if not self.values["model_path"]:
                raise ValueError("parameter model_path is empty")
            self.model = DepthModel.load(self.values["model_path"], device=self.values["device"],
                                         fp16=self.values["fp16"])
        self._build_backend()
        self.settings = Settings().updated(self.values).updated({
            "model_size": (self.model.height, self.model.width), "checkpoint_metric": bool(self.model.metric),
            "checkpoint_scale_source": getattr(self.model, "scale_source", "")})
        self.get_logger().info(f"model {self.values['model_path'] or '(injected)'}: {self.model.width}x"
                               f"{self.model.height} on {getattr(self.model, 'device', '?')}, "
                               f"metric={self.model.metric}, cameras={[c.name or '.' for c in self.cameras]}")
        if not self.model.metric and self.values["camera_height"] <= 0 and not self._warned_scale:
            self._warned_scale = True
            self.get_logger().warning(
                "checkpoint is relative (mono-trained, model.metric=False): depth is known only up to scale; "
                "set camera_height (metres above a flat ground) or depth_scale "
                f"(now {self.settings.depth_scale}) so that ~/depth and ~/points are in metres")

    def _build_backend(self) -> None:
        """Warm-up before activation: ``backend: auto`` builds, checks and times the candidates here (within
        ``backend_budget_s``), so no compilation ever stalls a live frame. Other models are used as they are."""
        from md2_ros.core.backends import make_backend
        from md2_ros.core.model import DepthModel
        if not isinstance(self.model, DepthModel):
            self.predictor = self.model
            return
        log = self.get_logger()
        self.predictor = make_backend(self.values["backend"], self.model, info=log.info, warn=log.warning,
                                      budget_s=self.values["backend_budget_s"])

    def on_activate(self, state):
        for cam in self.cameras:
            t = topic_names(cam.name)
            self._subs.append(self.create_subscription(Image, t["image"], self._image_cb(cam), SENSOR_QOS))
            if self.values["use_compressed"]:
                self._subs.append(self.create_subscription(CompressedImage, t["compressed"], self._image_cb(cam),
                                                           SENSOR_QOS))
            self._subs.append(self.create_subscription(CameraInfo, t["camera_info"], cam.on_camera_info, SENSOR_QOS))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="md2_depth_worker", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(self.values["diagnostics_period"], self._publish_diagnostics)
        self.active = True
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._teardown_active()
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        for pubs in self._pubs.values():
            for pub in pubs.values():
                self.destroy_publisher(pub)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._pubs, self._diag_pub = {}, None
        if not self._injected:
            self.model = None
        self.predictor = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._teardown_active()
        return TransitionCallbackReturn.SUCCESS

    def _teardown_active(self) -> None:
        self.active = False
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)
        self._worker = None

    # -- parameters ----------------------------------------------------------------------
    def _on_set_parameters(self, changes) -> SetParametersResult:
        candidate = dict(self.values)
        for p in changes:
            spec = params.SPECS.get(p.name)
            if spec is None:
                continue
            if spec.read_only:
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only (restart the node)")
            params.set_value(candidate, p.name, p.value, self.get_logger())
        reason = params.validate(candidate)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        self.values = candidate
        self.settings = self.settings.updated({k: candidate[k] for k in RUNTIME})
        return SetParametersResult(successful=True)

    # -- data path -------------------------------------------------------------------------
    def _image_cb(self, cam: CameraPipeline):
        def callback(msg):
            cam.offer(msg)
            with self._wake:
                self._wake.notify()
        return callback

    def _predict_batch(self, images):
        return self.predictor.predict_batch(images)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                if not any(c.pending for c in self.cameras):
                    self._wake.wait(timeout=0.5)
            try:
                self.process_pending()
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                self.warn_throttled("worker", f"unexpected error in the depth worker: {e!r}")

    def process_pending(self) -> int:
        """Process the newest pending frame of every camera once; return how many were published."""
        settings = self.settings
        items = []
        t_start = time.perf_counter()
        for cam in self.cameras:
            msg = cam.take()
            if msg is None:
                continue
            try:
                items.append((cam, cam.prepare(msg, settings)))
            except ConversionError as e:
                cam.stats.on_rejected(str(e))
                self.warn_throttled(f"{cam.name}/bad", f"dropped a bad image on {cam.name or 'image_raw'}: {e}")
        if not items:
            return 0
        t0 = time.perf_counter()
        try:
            depths = run_batch(items, self._predict_batch, settings)
        except Exception as e:  # noqa: BLE001 - a failing inference drops the frame, not the node
            for cam, _ in items:
                cam.stats.on_rejected(f"inference failed: {e!r}")
            self.warn_throttled("inference", f"inference failed: {e!r}")
            return 0
        infer_ms = (time.perf_counter() - t0) * 1e3 / len(items)
        done = 0
        for (cam, prep), depth in zip(items, depths):
            pubs = self._pubs.get(cam.name)
            if pubs is None:
                return done
            try:
                out = cam.finish(prep, depth, settings, want_cloud=pubs["points"].get_subscription_count() > 0,
                                 want_colored=pubs["colored"].get_subscription_count() > 0)
            except ConversionError as e:
                cam.stats.on_rejected(str(e))
                self.warn_throttled(f"{cam.name}/out", f"cannot build outputs for {cam.name or 'image_raw'}: {e}")
                continue
            pubs["depth"].publish(out.depth)
            for key, msg in (("depth_info", out.camera_info), ("points", out.cloud), ("colored", out.colored)):
                if msg is not None:
                    pubs[key].publish(msg)
            for key, text in out.notes:
                self.warn_throttled(f"{cam.name}/{key}", text)
            cam.stats.on_processed(infer_ms, (time.perf_counter() - t_start) * 1e3)
            done += 1
        return done

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()   # diagnostics describe "now", not an image
        fqn = self.get_fully_qualified_name()
        for cam in self.cameras:
            arr.status.append(to_status(f"{fqn}: {cam.name or 'camera'}", cam.name or fqn, cam.stats.window()))
        self._diag_pub.publish(arr)


def main(args=None) -> int:
    """Console script ``depth_node``: ``depth_node --ros-args --params-file config/depth.yaml``."""
    configure_fastdds()          # large-message shared memory for our outputs (see transport.py)
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = DepthNode()
        if node.values["autostart"] and not node.active:
            node.get_logger().error("autostart: the node did not reach the active state (see errors above)")
            code = 1
        else:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as e:   # invalid parameters: say why, exit non-zero
        print(f"depth_node: invalid parameters: {e}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node._teardown_active()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
