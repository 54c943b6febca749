"""A DepthNode with an injected model spun in a background thread, in its own rclpy context: real
topics, QoS and lifecycle services without a subprocess or a network model."""
from __future__ import annotations

import threading

import numpy as np


class FakeModel:
    """Depth = 1 + R/25.5 (so 1..11 m), at the image size; records the images it was given."""
    height, width, metric, device = 64, 192, False, "cpu"

    def __init__(self):
        self.calls = 0
        self.images = []

    def predict_batch(self, images):
        self.calls += 1
        self.images.extend(images)
        return [1.0 + img[..., 0].astype(np.float32) / 25.5 for img in images]


class LiveNode:
    """``DepthNode(model=...)`` spinning in a thread until ``close()``."""

    def __init__(self, model=None, name="depth_node", **params):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from md2_ros.ros.depth_node import DepthNode

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.model = model or FakeModel()
        overrides = [Parameter(k, value=v) for k, v in {"diagnostics_period": 0.2, **params}.items()]
        self.node = DepthNode(name, model=self.model, context=self.context, parameter_overrides=overrides)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down under the executor at close()
            pass

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node._teardown_active(join_timeout=2.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def offline_node(model):
    """Generator for a fixture: DepthNode(model) deactivated (no worker, no subscriptions) with FakePub
    outputs, so a test drives ``cameras[0].offer`` + ``process_pending`` itself."""
    import rclpy
    from rclpy.parameter import Parameter

    from md2_ros.ros.depth_node import DepthNode
    from ros_helpers import FakePub
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = DepthNode(model=model, context=ctx, parameter_overrides=[Parameter("diagnostics_period", value=60.0)])
    assert n.active
    n.trigger_deactivate()
    n._pubs[""] = {k: FakePub() for k in ("depth", "depth_info", "colored", "points")}
    try:
        yield n
    finally:
        n._teardown_active()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)
