"""The node builds its inference backend at configure (before activation) and logs what auto chose and why;
a forced backend that cannot run here falls back to eager with one warning; a bad name is refused."""
import pytest
import rclpy
import torch
from rclpy.parameter import Parameter

from md2_ros.core.model import DepthModel
from md2_ros.ros import params
from md2_ros.ros.depth_node import DepthNode


@pytest.fixture(scope="module")
def ctx():
    c = rclpy.Context()
    rclpy.init(context=c)
    yield c
    rclpy.try_shutdown(context=c)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DepthModel(18, 64, 96).setup_inference("cpu")


def make_node(ctx, model, **values):
    overrides = [Parameter("diagnostics_period", value=60.0)] + [Parameter(k, value=v) for k, v in values.items()]
    return DepthNode(model=model, context=ctx, parameter_overrides=overrides)


def test_auto_choice_is_logged_before_activation(ctx, model, capfd):
    node = make_node(ctx, model, backend_budget_s=3.0)   # room for the quick candidates only
    try:
        assert node.active and node.values["backend"] == "auto"
        err = capfd.readouterr().err
        line = next(ln for ln in err.splitlines() if "backend auto chose" in ln)
        assert node.predictor.name in line and " ms per warm-up batch" in line and "eager: " in line
        assert "skipped" in line and "budget" in line            # the slow builders did not fit in 3 s
        assert node.predictor.model is model
    finally:
        node._teardown_active()
        node.destroy_node()


def test_forced_backend_unavailable_here_falls_back_to_eager(ctx, model, capfd):
    node = make_node(ctx, model, backend="tensorrt")
    try:
        assert node.active and node.predictor.name == "eager"
        err = capfd.readouterr().err
        assert err.count("backend tensorrt unavailable, falling back to eager") == 1
    finally:
        node._teardown_active()
        node.destroy_node()


def test_backend_parameter_is_validated_and_read_only(ctx, model):
    assert params.validate({"backend": "fastest"}).startswith("backend must be one of auto, eager")
    with pytest.raises(ValueError, match="backend must be one of"):
        make_node(ctx, model, backend="fastest")
    node = make_node(ctx, model, backend="eager")
    try:
        result = node.set_parameters([Parameter("backend", value="bf16")])[0]
        assert not result.successful and "read-only" in result.reason
    finally:
        node._teardown_active()
        node.destroy_node()


def test_backend_names_match_the_core_registry():
    from md2_ros.core.backends import NAMES
    assert params.BACKENDS == NAMES
