"""The md2_ros depth node (lifecycle): camera images in; depth, colorized depth and clouds out.

Per camera (``cameras`` parameter; empty = one camera at the node namespace), topics as in
:mod:`md2_ros.ros.topics`: one image subscription (``image_raw`` rectified with ``camera_info``, or
``image_rect``; raw or compressed transport), outputs ``~/<cam>/depth/image_rect``,
``~/<cam>/depth/camera_info``, ``~/<cam>/depth/colorized``, ``~/<cam>/depth/points``, and
``/diagnostics`` (published in every lifecycle state, with the state).

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
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from . import params
from .conversions import ConversionError
from .diagnostics import to_status
from .pipeline import CameraPipeline, Settings, run_batch
from .topics import LEGACY, OUTPUT_QOS, SENSOR_QOS, topic_names
from .transport import configure_fastdds, remove_profile

WARN_PERIOD_S = 5.0
RUNTIME = tuple(n for n, s in params.SPECS.items() if not s.read_only)
OUTPUT_TYPES = {"depth": Image, "depth_info": CameraInfo, "colored": Image, "points": PointCloud2}


def is_out_of_memory(error: BaseException) -> bool:
    """CPU (MemoryError) or accelerator (torch.OutOfMemoryError, 'out of memory' RuntimeError) exhaustion."""
    return isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or \
        "out of memory" in str(error).lower()


def release_accelerator_memory() -> None:
    """Return cached CUDA blocks after an out-of-memory error (no-op without torch/CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class DepthNode(LifecycleNode):
    """See the module docstring. With ``autostart`` (default) it configures and activates itself."""

    def __init__(self, node_name: str = "depth_node", model=None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.values = params.declare(self)
        reason = params.validate(self.values)
        if reason:
            raise ValueError(reason)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.transport = self.values["image_transport"]
        if self.values["use_compressed"]:
            self.get_logger().warning("parameter use_compressed is deprecated: use image_transport:=compressed")
            self.transport = "compressed"
        self.settings = Settings().updated(self.values)
        self.cameras = [CameraPipeline(ns) for ns in (self.values["cameras"] or [""])]
        self.model = model                      # injected model (tests) or loaded in on_configure
        self.predictor = None                   # the inference backend built from the model in on_configure
        self._injected = model is not None
        self._pubs: dict = {}
        self._subs: list = []
        self._worker = None
        self._latched: dict = {}
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._last_warn: dict = {}
        self._warned_scale = False
        self._warned_legacy: set = set()
        self.active = False
        self.lifecycle_state = "unconfigured"
        # Diagnostics in every lifecycle state (a plain publisher), on a steady timer (sim time may stand still).
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.values["diagnostics_period"], self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
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
            t = self.topics(cam)
            pubs = {k: self.create_lifecycle_publisher(typ, t[k], OUTPUT_QOS) for k, typ in OUTPUT_TYPES.items()}
            if self.values["legacy_topics"]:
                pubs.update({f"legacy_{k}": self.create_lifecycle_publisher(OUTPUT_TYPES[k], t[f"legacy_{k}"],
                                                                            OUTPUT_QOS) for k in LEGACY})
            self._pubs[cam.name] = pubs
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def topics(self, cam: CameraPipeline) -> dict:
        return topic_names(cam.name, self.values["rectify"], self.transport)

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
        image_type = CompressedImage if self.transport == "compressed" else Image
        for cam in self.cameras:
            t = self.topics(cam)
            self._subs.append(self.create_subscription(image_type, t["image"], self._image_cb(cam), SENSOR_QOS))
            self._subs.append(self.create_subscription(CameraInfo, t["camera_info"], cam.on_camera_info, SENSOR_QOS))
        self._latched = {}
        self._subscribe_latched_camera_info()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="md2_depth_worker", daemon=True)
        self._worker.start()
        self.active = True
        self.lifecycle_state = "active"
        return super().on_activate(state)

    def _subscribe_latched_camera_info(self) -> None:
        """Add a transient-local CameraInfo reader for a camera whose CameraInfo comes from a latched
        publisher (a volatile reader never gets its one sample). Only then, and matching that publisher's
        reliability: a latched reader is incompatible with the usual sensor-QoS publishers, and DDS would
        log QoS warnings on both sides. Called at activation and from the (steady) diagnostics timer."""
        for cam in self.cameras:
            if not self.active or cam.name in self._latched or cam.has_camera_info:
                continue
            topic = self.resolve_topic_name(self.topics(cam)["camera_info"])
            latched = [i.qos_profile for i in self.get_publishers_info_by_topic(topic)
                       if i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL]
            if not latched:
                continue
            qos = QoSProfile(depth=1, reliability=latched[0].reliability, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            sub = self.create_subscription(CameraInfo, topic, cam.on_camera_info, qos, event_callbacks=
                                           SubscriptionEventCallbacks(incompatible_qos=lambda event: None))
            self._latched[cam.name] = sub
            self._subs.append(sub)

    def on_deactivate(self, state):
        self._teardown_active()
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        for pubs in self._pubs.values():
            for pub in pubs.values():
                self.destroy_publisher(pub)
        self._pubs = {}
        if not self._injected:
            self.model = None
        self.predictor = None
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._teardown_active()
        self.lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _teardown_active(self, join_timeout: float = 10.0) -> None:
        """Unsubscribe and stop the worker (waiting at most ``join_timeout`` s for a frame in flight)."""
        self.active = False
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=join_timeout)
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

    def _reject(self, cam: CameraPipeline, key: str, text: str, error: BaseException) -> None:
        """Count a dropped frame and log why (throttled); out-of-memory also frees cached accelerator memory."""
        if is_out_of_memory(error):
            release_accelerator_memory()
            text = f"out of memory ({text}); frame dropped, node keeps running"
        cam.stats.on_rejected(text)
        self.warn_throttled(f"{cam.name}/{key}", f"{cam.name or 'camera'}: {text}")

    def _prepare_all(self, settings) -> list:
        items = []
        for cam in self.cameras:
            msg = cam.take()
            if msg is None:
                continue
            try:
                items.append((cam, cam.prepare(msg, settings)))
            except (ConversionError, MemoryError) as e:
                self._reject(cam, "bad", f"dropped a bad image: {e}", e)
        return items

    def process_pending(self) -> int:
        """Process the newest pending frame of every camera once; return how many were published."""
        settings = self.settings
        t_start = time.perf_counter()
        items = self._prepare_all(settings)
        if not items:
            return 0
        t0 = time.perf_counter()
        try:
            depths = run_batch(items, self._predict_batch, settings)
        except Exception as e:  # noqa: BLE001 - a failing inference drops the frame, not the node
            for cam, prep in items:
                w, h = prep.in_size
                self._reject(cam, "inference", f"inference failed on a {w}x{h} image: {e!r}", e)
            return 0
        infer_ms = (time.perf_counter() - t0) * 1e3 / len(items)
        done = 0
        for (cam, prep), depth in zip(items, depths):
            if self._publish_outputs(cam, prep, depth, settings):
                cam.stats.on_processed(infer_ms, (time.perf_counter() - t_start) * 1e3)
                done += 1
        return done

    def _wanted(self, pubs: dict, key: str) -> bool:
        legacy = pubs.get(f"legacy_{key}")
        return pubs[key].get_subscription_count() > 0 or (legacy is not None and legacy.get_subscription_count() > 0)

    def _publish_outputs(self, cam: CameraPipeline, prep, depth, settings) -> bool:
        pubs = self._pubs.get(cam.name)
        if pubs is None:
            return False
        try:
            out = cam.finish(prep, depth, settings, want_cloud=self._wanted(pubs, "points"),
                             want_colored=self._wanted(pubs, "colored"))
        except (ConversionError, MemoryError) as e:
            self._reject(cam, "out", f"cannot build outputs: {e}", e)
            return False
        for key, msg in (("depth", out.depth), ("depth_info", out.camera_info), ("points", out.cloud),
                         ("colored", out.colored)):
            if msg is None:
                continue
            pubs[key].publish(msg)
            legacy = pubs.get(f"legacy_{key}")
            if legacy is not None and legacy.get_subscription_count() > 0:
                self._warn_legacy(legacy.topic_name, pubs[key].topic_name)
                legacy.publish(msg)
        for key, text in out.notes:
            self.warn_throttled(f"{cam.name}/{key}", text)
        return True

    def _warn_legacy(self, old: str, new: str) -> None:
        if old not in self._warned_legacy:
            self._warned_legacy.add(old)
            self.get_logger().warning(f"topic {old} is deprecated and will be removed in the next release: "
                                      f"subscribe to {new}")

    def _publish_diagnostics(self) -> None:
        self._subscribe_latched_camera_info()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()   # diagnostics describe "now", not an image
        fqn = self.get_fully_qualified_name()
        for cam in self.cameras:
            arr.status.append(to_status(f"{fqn}: {cam.name or 'camera'}", cam.name or fqn, cam.stats.window(),
                                        self.lifecycle_state))
        self._diag_pub.publish(arr)


def main(args=None) -> int:
    """Console script ``depth_node``: ``depth_node --ros-args --params-file config/depth.yaml``."""
    profile = configure_fastdds()    # large-message shared memory for our outputs (see transport.py)
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = DepthNode()
        remove_profile(profile)       # read when the participant was created: leave nothing in /tmp
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
        if node is not None:     # Ctrl-C: launch escalates after 5 s, so don't wait long for a frame in flight
            node._teardown_active(join_timeout=1.0)
            node.destroy_node()
        rclpy.try_shutdown()
        remove_profile(profile)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
